"""Subscriptions by status now: the console's Revenue page shows it beside the range's figures."""
from __future__ import annotations

import strawberry

from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.types.subscriptions import SubscriptionStatus


@strawberry.type(description="How many subscriptions stand in one status (subscriptionsByStatus).")
class StatusCount:
    status: SubscriptionStatus = strawberry.field(description="The status.")
    count: int = strawberry.field(description="Subscriptions in it, on any plan, free ones included.")


@strawberry.type
class StatusCountsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscriptionsByStatus",
        "Every subscription status with how many subscriptions stand in it now, in the order of the "
        "SubscriptionStatus enum (0 where none). Counted in the subscriptions read model: it may lag the "
        "ledger by the projection delay (see `projections`).",
    ))
    async def subscriptions_by_status(self, info: Info) -> list[StatusCount]:
        permissions.caller(info)
        services = info.context.services
        counts = await services.run_sync(services.subscriptions.count_by_status)
        return [StatusCount(status=status, count=counts.get(status.value, 0)) for status in SubscriptionStatus]
