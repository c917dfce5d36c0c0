"""Analytics types (schema.graphql, analytics)."""
from __future__ import annotations

from typing import Any

import strawberry

from schema.scalars import Date


@strawberry.type
class PlanRevenue:
    plan_id: strawberry.ID
    revenue: int


@strawberry.type
class RevenueMetrics:
    total: int = strawberry.field(description="Net revenue (succeeded payments minus refunds) in the range.")
    by_plan: list[PlanRevenue]
    mrr: int = strawberry.field(
        description="Monthly recurring revenue at the end of the range (annual prices count as price/12)."
    )
    arr: int


@strawberry.type
class SubscriberMetrics:
    total_active: int
    new_subscribers: int
    churned_subscribers: int
    churn_rate: float
    retention_rate: float


@strawberry.type
class ConversionMetrics:
    trial_to_paid: float
    plan_upgrades: int
    plan_downgrades: int


@strawberry.type
class PaymentMetrics:
    success_rate: float
    failed_payments: int
    refunds: int
    refunded_amount: int


@strawberry.type
class SubscriptionMetrics:
    from_: Date = strawberry.field(name="from")
    to: Date
    revenue: RevenueMetrics
    subscribers: SubscriberMetrics
    conversions: ConversionMetrics
    payments: PaymentMetrics

    @classmethod
    def of(cls, m: dict[str, Any]) -> SubscriptionMetrics:
        revenue = m["revenue"]
        return cls(
            from_=m["from"],
            to=m["to"],
            revenue=RevenueMetrics(
                total=revenue["total"],
                by_plan=[PlanRevenue(plan_id=strawberry.ID(p), revenue=r) for p, r in revenue["by_plan"]],
                mrr=revenue["mrr"],
                arr=revenue["arr"],
            ),
            subscribers=SubscriberMetrics(**m["subscribers"]),
            conversions=ConversionMetrics(**m["conversions"]),
            payments=PaymentMetrics(**m["payments"]),
        )


@strawberry.type
class CohortRow:
    cohort: str = strawberry.field(description="Signup month, YYYY-MM.")
    size: int
    retained: list[int] = strawberry.field(
        description="retained[k]: members of the cohort with a paid or trialing subscription k months after their signup month."
    )


@strawberry.type
class LifetimeValue:
    user_id: strawberry.ID
    total_revenue: int
    subscription_months: int
    average_monthly_value: int
