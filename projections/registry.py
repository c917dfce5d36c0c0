"""Every read model the product keeps, fresh instances in the order they are run."""
from __future__ import annotations

from typing import Any

from projections.aggregates import AggregatesProjection
from projections.analytics import AnalyticsProjection
from projections.notifications import NotificationsProjection
from projections.payments import PaymentsProjection
from projections.subscriptions import SubscriptionsProjection
from projections.wallet_history import WalletHistory
from projections.webhooks import WebhookEventsProjection


def read_models() -> dict[str, Any]:
    """By name: wallet_history, payments, subscriptions, notifications, aggregates, analytics, webhook_events."""
    found = [WalletHistory(), PaymentsProjection(), SubscriptionsProjection(), NotificationsProjection(),
             AggregatesProjection(), AnalyticsProjection(), WebhookEventsProjection()]
    return {projection.name: projection for projection in found}
