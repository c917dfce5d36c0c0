"""The page types of the list queries: one shape for every list (docs/api-guide.md, "Paging").

Every list pages the way the wallet's history (`PointTransactionConnection`)
always has: a field taking `first` (page size, capped) and `after` (a cursor)
answers a `…Connection` with `items` (the page) and `nextCursor` (pass it as
`after` for the next page; null on the last page). `items`/`nextCursor` was
chosen over Relay's `edges`/`pageInfo` so that the existing connection is a
member of the family unchanged (the contract allows adding, not renaming).
"""
from __future__ import annotations

import strawberry

from schema.types.audit import LedgerEvent
from schema.types.payments import Payment
from schema.types.subscriptions import Notification, Subscription

NEXT_CURSOR = "Opaque cursor for the next page (pass it as `after`); null on the last page."


@strawberry.type(description="A page of payments (paymentsPage).")
class PaymentConnection:
    items: list[Payment] = strawberry.field(description="The page, newest first.")
    next_cursor: str | None = strawberry.field(description=NEXT_CURSOR)


@strawberry.type(description="A page of subscriptions (subscriptionsPage).")
class SubscriptionConnection:
    items: list[Subscription] = strawberry.field(description="The page, oldest first.")
    next_cursor: str | None = strawberry.field(description=NEXT_CURSOR)


@strawberry.type(description="A page of notifications (notificationsPage).")
class NotificationConnection:
    items: list[Notification] = strawberry.field(description="The page, newest first.")
    next_cursor: str | None = strawberry.field(description=NEXT_CURSOR)


@strawberry.type(description="A page of the ledger's events (eventsPage).")
class LedgerEventConnection:
    items: list[LedgerEvent] = strawberry.field(description="The page, oldest first (global order).")
    next_cursor: str | None = strawberry.field(description=NEXT_CURSOR)
