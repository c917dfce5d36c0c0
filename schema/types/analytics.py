"""Analytics types (schema.graphql, analytics)."""
from __future__ import annotations

from typing import Any

import strawberry

from schema.scalars import Date


@strawberry.type(description="Net revenue of one plan in the range.")
class PlanRevenue:
    plan_id: strawberry.ID = strawberry.field(description="The plan.")
    revenue: int = strawberry.field(description="Succeeded payments minus refunds for this plan, in KRW; point packages under `points`.")


@strawberry.type(description="Revenue in the range, in KRW.")
class RevenueMetrics:
    total: int = strawberry.field(description="Net revenue (succeeded payments minus refunds) in the range.")
    by_plan: list[PlanRevenue] = strawberry.field(description="The total split by plan.")
    mrr: int = strawberry.field(
        description="Monthly recurring revenue at the end of the range (annual prices count as price/12)."
    )
    arr: int = strawberry.field(description="Annual recurring revenue: mrr × 12.")


@strawberry.type(description="Subscriber counts in the range.")
class SubscriberMetrics:
    total_active: int = strawberry.field(description="Subscribers at the end of the range: TRIALING, ACTIVE, PAST_DUE or CANCELING on a priced plan.")
    new_subscribers: int = strawberry.field(description="Users whose subscription on a priced plan started in the range.")
    churned_subscribers: int = strawberry.field(description="Users whose subscription became CANCELED, EXPIRED or SUSPENDED in the range.")
    churn_rate: float = strawberry.field(description="churnedSubscribers ÷ subscribers at the range's start (0 when there were none).")
    retention_rate: float = strawberry.field(description="1 − churnRate.")


@strawberry.type(description="Trial conversion and plan changes in the range.")
class ConversionMetrics:
    trial_to_paid: float = strawberry.field(
        description="Of the trials that ended in the range, the share that reached a paid period."
    )
    plan_upgrades: int = strawberry.field(description="Plan or cycle changes taking effect in the range to a higher monthly-equivalent list price.")
    plan_downgrades: int = strawberry.field(description="Plan or cycle changes taking effect in the range to a lower monthly-equivalent list price.")


@strawberry.type(description="Payment outcomes in the range.")
class PaymentMetrics:
    success_rate: float = strawberry.field(description="Succeeded ÷ (succeeded + failed) charge attempts settled in the range (0 when none).")
    failed_payments: int = strawberry.field(description="Charge attempts that failed in the range.")
    refunds: int = strawberry.field(description="Refunds made in the range.")
    refunded_amount: int = strawberry.field(description="KRW refunded in the range.")


@strawberry.type(description=(
    "Subscription analytics over a range of calendar days (SUBLEDGER_TIMEZONE), from the analytics read model: "
    "it may lag the ledger by the projection delay (see `projections`)."
))
class SubscriptionMetrics:
    from_: Date = strawberry.field(name="from", description="First day of the range.")
    to: Date = strawberry.field(description="Last day of the range (inclusive).")
    revenue: RevenueMetrics = strawberry.field(description="Revenue.")
    subscribers: SubscriberMetrics = strawberry.field(description="Subscribers.")
    conversions: ConversionMetrics = strawberry.field(description="Conversions and plan changes.")
    payments: PaymentMetrics = strawberry.field(description="Payments.")

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


@strawberry.type(description="One monthly signup cohort and how many of it stayed.")
class CohortRow:
    cohort: str = strawberry.field(description="Signup month, YYYY-MM.")
    size: int = strawberry.field(description="Users whose first subscription (any plan) started in that month.")
    retained: list[int] = strawberry.field(
        description="retained[k]: members of the cohort with a paid or trialing subscription k months after their signup month."
    )


@strawberry.type(description="What one user has paid, from the analytics read model (may lag the ledger).")
class LifetimeValue:
    user_id: strawberry.ID = strawberry.field(description="The user.")
    total_revenue: int = strawberry.field(description="All the user's succeeded payments minus refunds, in KRW (point purchases included).")
    subscription_months: int = strawberry.field(description="Calendar months in which the user had a paid (not trialing) subscription.")
    average_monthly_value: int = strawberry.field(description="totalRevenue ÷ subscriptionMonths, halves up (0 without months).")
