"""Analytics queries (SPEC §7): read from the analytics projection only, so they may
lag the ledger by the projection delay (visible in `projections`)."""
from __future__ import annotations

from typing import Annotated

import strawberry

from projections import analytics_metrics as metrics
from schema import permissions
from schema.arguments import NAMED_USER
from schema.context import Info
from schema.permissions import Root
from schema.scalars import Date
from schema.types.analytics import CohortRow, LifetimeValue, SubscriptionMetrics


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscriptionMetrics",
        "Revenue, subscribers, conversions and payments over a range of days, from the analytics read model "
        f"(may lag the ledger by the projection delay). At most {metrics.MAX_DAYS} days.",
        errors=("BAD_USER_INPUT",),
    ))
    async def subscription_metrics(
        self, info: Info,
        from_: Annotated[Date, strawberry.argument(name="from", description="First day (SUBLEDGER_TIMEZONE).")],
        to: Annotated[Date, strawberry.argument(description="Last day, inclusive; not before `from`.")],
    ) -> SubscriptionMetrics:
        permissions.caller(info)
        services = info.context.services
        found = await services.run_sync(
            metrics.subscription_metrics, services.analytics, from_, to, services.ledger.tz, services.clock.now()
        )
        return SubscriptionMetrics.of(found)

    @strawberry.field(description=permissions.described(
        Root.QUERY, "cohorts",
        "Monthly signup cohorts between the two months, from the analytics read model (may lag the ledger). "
        f"At most {metrics.MAX_MONTHS} months.",
        errors=("BAD_USER_INPUT",),
    ))
    async def cohorts(
        self, info: Info,
        from_month: Annotated[str, strawberry.argument(description="First month, YYYY-MM.")],
        to_month: Annotated[str, strawberry.argument(description="Last month, YYYY-MM, inclusive.")],
    ) -> list[CohortRow]:
        permissions.caller(info)
        services = info.context.services
        rows = await services.run_sync(
            metrics.cohorts, services.analytics, from_month, to_month, services.ledger.tz, services.clock.now()
        )
        return [CohortRow(**row) for row in rows]

    @strawberry.field(description=permissions.described(
        Root.QUERY, "lifetimeValue", "What one user has paid, from the analytics read model (may lag the ledger)."
    ))
    async def lifetime_value(
        self, info: Info, user_id: Annotated[strawberry.ID, strawberry.argument(description=NAMED_USER)]
    ) -> LifetimeValue:
        user = permissions.subject(info, user_id)
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
