"""Audit types: ledger events and the verification report (schema.graphql, audit)."""
from __future__ import annotations

import strawberry

from projections.ledger_log import LedgerEntry
from schema.scalars import JSON, DateTime
from schema.types.payments import Payment, PaymentMethod
from schema.types.subscriptions import Notification, Subscription
from schema.types.wallet import Wallet


@strawberry.type
class LedgerEvent:
    position: int = strawberry.field(description="Position in the ledger's global, gap-free order.")
    aggregate_id: strawberry.ID
    aggregate_type: str
    version: int = strawberry.field(description="Version of the aggregate after this event (1 for its first event).")
    type: str
    occurred_at: DateTime
    data: JSON

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEvent:
        return cls(
            position=entry.position,
            aggregate_id=strawberry.ID(entry.aggregate_id),
            aggregate_type=entry.aggregate_type,
            version=entry.version,
            type=entry.type,
            occurred_at=entry.occurred_at,
            data=entry.data,
        )


@strawberry.type
class AuditReport:
    events_replayed: int
    aggregates_checked: int
    mismatches: list[str] = strawberry.field(
        description="Differences found between replayed state and the read models; empty when consistent."
    )


@strawberry.type
class UserDataExport:
    user_id: strawberry.ID
    subscriptions: list[Subscription]
    payments: list[Payment]
    wallet: Wallet
    notifications: list[Notification]
    events: list[LedgerEvent]
    email: str | None = strawberry.field(description="Contact email from the user's token; null once erased.")
    name: str | None = strawberry.field(description="Contact name from the user's token; null once erased.")
    payment_methods: list[PaymentMethod]
