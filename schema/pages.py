"""Page sizes (issue 10, abuse): every list's `first` argument has a default and a cap.

A `first` above the cap is refused (BAD_USER_INPUT, naming the cap), not quietly
clamped: a client that asked for 10,000 rows and got 200 would believe it had
everything. `first` below 1 is refused too. Documented in docs/permissions.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidInput


@dataclass(frozen=True)
class PageSize:
    default: int
    maximum: int

    def of(self, first: int | None) -> int:
        """The page size to read: `first`, or the default when it was not given."""
        if first is None:
            return self.default
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= self.maximum:
            raise InvalidInput(f"first must be between 1 and {self.maximum}, got {first}")
        return first

    def describe(self) -> str:
        return f"`first`: 1 to {self.maximum} (default {self.default}); more is refused with BAD_USER_INPUT."


EVENTS = PageSize(default=100, maximum=1000)
PAYMENTS = PageSize(default=50, maximum=200)
NOTIFICATIONS = PageSize(default=50, maximum=200)
TRANSACTIONS = PageSize(default=50, maximum=200)
WEBHOOK_DELIVERIES = PageSize(default=50, maximum=200)
WEBHOOK_DELIVERIES_PAGE = WEBHOOK_DELIVERIES
#: The cursor pages (schema/paged_lists.py): the same caps as the lists they page.
PAYMENTS_PAGE = PAYMENTS
NOTIFICATIONS_PAGE = NOTIFICATIONS
EVENTS_PAGE = EVENTS
SUBSCRIPTIONS_PAGE = PageSize(default=50, maximum=200)
COLLECTIONS = PageSize(default=50, maximum=200)

#: Every capped list, by the field that takes `first` (the test walks the served schema against it).
CAPPED: dict[str, PageSize] = {
    "Query.events": EVENTS,
    "Query.payments": PAYMENTS,
    "Query.notifications": NOTIFICATIONS,
    "Wallet.transactions": TRANSACTIONS,
    "Query.webhookDeliveries": WEBHOOK_DELIVERIES,
    "Query.webhookDeliveriesPage": WEBHOOK_DELIVERIES_PAGE,
    "Query.paymentsPage": PAYMENTS_PAGE,
    "Query.notificationsPage": NOTIFICATIONS_PAGE,
    "Query.subscriptionsPage": SUBSCRIPTIONS_PAGE,
    "Query.eventsPage": EVENTS_PAGE,
    "Query.collections": COLLECTIONS,
}
