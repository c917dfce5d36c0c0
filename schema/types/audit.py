"""Audit types: ledger events and the verification report (schema.graphql, audit)."""
from __future__ import annotations

import strawberry

from projections.ledger_log import LedgerEntry
from schema.scalars import JSON, DateTime
from schema.types.payments import Payment, PaymentMethod
from schema.types.subscriptions import Notification, Subscription
from schema.types.wallet import Wallet


@strawberry.type(description=(
    "One event of the ledger. `data` never holds a billing key; personal fields of an erased user read as null."
))
class LedgerEvent:
    position: int = strawberry.field(description=(
        "Position in the ledger's global order: strictly increasing, not necessarily consecutive. Page on with "
        "`eventsPage(after:)` and its nextCursor (or, deprecated, `events(after:)` with this position)."
    ))
    aggregate_id: strawberry.ID = strawberry.field(description="The aggregate (stream) the event belongs to.")
    aggregate_type: str = strawberry.field(description="Its type: Subscription, Wallet, Payment, Customer, ….")
    version: int = strawberry.field(description="Version of the aggregate after this event (1 for its first event).")
    type: str = strawberry.field(description="The event's name within its aggregate type, e.g. Subscribed, Credited, Debited.")
    occurred_at: DateTime = strawberry.field(description="The event's business time where it has one, else when it was recorded.")
    data: JSON = strawberry.field(description="The event's attributes; billing keys read as \"[sealed]\", erased personal fields as null.")

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


@strawberry.type(description="The result of replaying the ledger against the read models (verifyLedger).")
class AuditReport:
    events_replayed: int = strawberry.field(description="Events replayed.")
    aggregates_checked: int = strawberry.field(description="Aggregates rebuilt and compared.")
    mismatches: list[str] = strawberry.field(
        description="Differences found between replayed state and the read models; empty when consistent."
    )


@strawberry.type(description=(
    "Everything kept about one user. Subscriptions, payments and notifications are listed from read models "
    "(which may lag the ledger by the projection delay); each subscription and payment is then read from the ledger."
))
class UserDataExport:
    user_id: strawberry.ID = strawberry.field(description="The user.")
    subscriptions: list[Subscription] = strawberry.field(
        description="Every subscription, oldest first; listed from a read model, so it may lag by the projection delay."
    )
    payments: list[Payment] = strawberry.field(
        description="Every payment; listed from a read model, so it may lag by the projection delay."
    )
    wallet: Wallet = strawberry.field(description="The point wallet (empty if never used).")
    notifications: list[Notification] = strawberry.field(
        description="The newest 500 notifications, newest first, from the outbox read model (may lag by the projection delay)."
    )
    events: list[LedgerEvent] = strawberry.field(description="Every ledger event of the user's aggregates.")
    email: str | None = strawberry.field(description="Contact email from the user's token; null once erased.")
    name: str | None = strawberry.field(description="Contact name from the user's token; null once erased.")
    payment_methods: list[PaymentMethod] = strawberry.field(description="Every payment method, removed ones included.")
