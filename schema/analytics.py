"""Analytics queries (SPEC §7): read from the analytics projection only, so they may
lag the ledger by the projection delay (visible in `projections`)."""
from __future__ import annotations

from typing import Annotated

import strawberry

from projections import analytics_metrics as metrics
from schema.context import Info
from schema.scalars import Date
from schema.types.analytics import CohortRow, LifetimeValue, SubscriptionMetrics


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="ANALYST or ADMIN.")
    async def subscription_metrics(
        self, info: Info, from_: Annotated[Date, strawberry.argument(name="from")], to: Date
    ) -> SubscriptionMetrics:
        info.context.caller.require("analyst", "admin")
        services = info.context.services
        found = await services.run_sync(
            metrics.subscription_metrics, services.analytics, from_, to, services.ledger.tz, services.clock.now()
        )
        return SubscriptionMetrics.of(found)

    @strawberry.field(description="ANALYST or ADMIN. Monthly signup cohorts between the two months, YYYY-MM.")
    async def cohorts(self, info: Info, from_month: str, to_month: str) -> list[CohortRow]:
        info.context.caller.require("analyst", "admin")
        services = info.context.services
        rows = await services.run_sync(
            metrics.cohorts, services.analytics, from_month, to_month, services.ledger.tz, services.clock.now()
        )
        return [CohortRow(**row) for row in rows]

    @strawberry.field(description="ANALYST or ADMIN, or the user for their own.")
    async def lifetime_value(self, info: Info, user_id: strawberry.ID) -> LifetimeValue:
        user = info.context.caller.user_for(str(user_id), "analyst")
        services = info.context.services
        found = await services.run_sync(
            metrics.lifetime_value, services.analytics, user, services.ledger.tz, services.clock.now()
        )
        return LifetimeValue(
            user_id=strawberry.ID(found["user_id"]),
            total_revenue=found["total_revenue"],
            subscription_months=found["subscription_months"],
            average_monthly_value=found["average_monthly_value"],
        )
