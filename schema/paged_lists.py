"""The list queries as cursor pages (issue 12): `paymentsPage`, `subscriptionsPage`,
`notificationsPage` and `eventsPage`, the same shape as the wallet's `transactions`.

The older list fields (`payments(first:)`, `notifications(first:)`, `subscriptions`,
`events(after: Int)`) stay, deprecated, for the contract; these read the same rows
with the same permission rules and page caps, through keyset cursors
(`projections/keyset.py`): stable when rows are written between two pages, and a
cursor of another list, user or filter, or a tampered one, answers BAD_USER_INPUT.
"""
from __future__ import annotations

from typing import Annotated

import strawberry

from schema import pages, permissions
from schema.arguments import UserId
from schema.context import Info
from schema.permissions import Root
from schema.types.audit import LedgerEvent
from schema.types.connections import LedgerEventConnection, NotificationConnection, PaymentConnection, SubscriptionConnection
from schema.types.payments import Payment
from schema.types.subscriptions import Notification, Subscription

AFTER = (
    "The nextCursor of the previous page, unchanged; omit for the first page. A cursor of another list (or "
    "another user's, or other filters') or a tampered one answers BAD_USER_INPUT."
)
After = Annotated[str | None, strawberry.argument(description=AFTER)]
LAGS = "may take a moment (the projection delay) to appear"


def first_argument(size: pages.PageSize) -> object:
    return strawberry.argument(description=f"Page size: 1 to {size.maximum} (default {size.default}).")


@strawberry.type
class PagedListsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "paymentsPage",
        f"The user's payments, newest first, a page at a time. Listed from the payments read model: one just made "
        f"{LAGS}; each listed payment is read from the ledger. {pages.PAYMENTS_PAGE.describe()}",
        errors=("BAD_USER_INPUT",),
    ))
    async def payments_page(
        self, info: Info, user_id: UserId = None,
        first: Annotated[int | None, first_argument(pages.PAYMENTS_PAGE)] = pages.PAYMENTS_PAGE.default,
        after: After = None,
    ) -> PaymentConnection:
        services = info.context.services
        user = permissions.subject(info, user_id)
        page = await services.run_sync(services.payments.payments_page, user, pages.PAYMENTS_PAGE.of(first), after)
        loaded = [await services.run_sync(services.ledger.payment, pid) for pid in page.items]
        return PaymentConnection(items=[Payment.of(p) for p in loaded if p is not None], next_cursor=page.next_cursor)

    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscriptionsPage",
        f"The user's subscriptions, oldest first, a page at a time. Listed from the subscriptions read model: one "
        f"just created {LAGS}; each is then read from the ledger. {pages.SUBSCRIPTIONS_PAGE.describe()}",
        errors=("BAD_USER_INPUT",),
    ))
    async def subscriptions_page(
        self, info: Info, user_id: UserId = None,
        first: Annotated[int | None, first_argument(pages.SUBSCRIPTIONS_PAGE)] = pages.SUBSCRIPTIONS_PAGE.default,
        after: After = None,
    ) -> SubscriptionConnection:
        services = info.context.services
        user = permissions.subject(info, user_id)
        page = await services.run_sync(
            services.subscriptions.subscriptions_page, user, pages.SUBSCRIPTIONS_PAGE.of(first), after
        )
        loaded = [await services.run_sync(services.ledger.subscription, sub_id) for sub_id in page.items]
        now = services.clock.now()
        return SubscriptionConnection(
            items=[Subscription.of(sub, info, now) for sub in loaded if sub is not None], next_cursor=page.next_cursor
        )

    @strawberry.field(description=permissions.described(
        Root.QUERY, "notificationsPage",
        f"The user's notifications, newest first, a page at a time, from the outbox read model: one caused by a "
        f"write {LAGS}. {pages.NOTIFICATIONS_PAGE.describe()}",
        errors=("BAD_USER_INPUT",),
    ))
    async def notifications_page(
        self, info: Info, user_id: UserId = None,
        first: Annotated[int | None, first_argument(pages.NOTIFICATIONS_PAGE)] = pages.NOTIFICATIONS_PAGE.default,
        after: After = None,
    ) -> NotificationConnection:
        services = info.context.services
        user = permissions.subject(info, user_id)
        page = await services.run_sync(services.notifications.page, user, pages.NOTIFICATIONS_PAGE.of(first), after)
        return NotificationConnection(items=[Notification.of(row) for row in page.items], next_cursor=page.next_cursor)

    @strawberry.field(description=permissions.described(
        Root.QUERY, "eventsPage",
        "The ledger's events in global order (oldest first), a page at a time, optionally for one aggregate or "
        "user; read from the ledger itself, so the page is never behind it (a userId finds the user's aggregates "
        f"through a read model, which may lag by the projection delay). {pages.EVENTS_PAGE.describe()}",
        errors=("BAD_USER_INPUT",),
    ))
    async def events_page(
        self, info: Info,
        aggregate_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this aggregate's events.")] = None,
        user_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only the events of this user's aggregates."
        )] = None,
        first: Annotated[int | None, first_argument(pages.EVENTS_PAGE)] = pages.EVENTS_PAGE.default,
        after: After = None,
    ) -> LedgerEventConnection:
        permissions.caller(info)
        size = pages.EVENTS_PAGE.of(first)
        services = info.context.services
        page = await services.run_sync(
            lambda: services.read_models.events_page(
                aggregate_id=str(aggregate_id) if aggregate_id is not None else None,
                user_id=str(user_id) if user_id is not None else None,
                first=size,
                after=after,
            )
        )
        return LedgerEventConnection(items=[LedgerEvent.of(e) for e in page.items], next_cursor=page.next_cursor)
