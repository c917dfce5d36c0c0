"""Catalog types (schema.graphql, catalog)."""
from __future__ import annotations

import strawberry

from domain import catalog as domain


@strawberry.type
class UsageLimit:
    service: str
    limit: int | None = strawberry.field(description="Uses allowed per monthly quota window; null means unlimited.")


@strawberry.type
class Plan:
    id: strawberry.ID
    name: str
    monthly_price: int = strawberry.field(description="Price of one monthly period in KRW.")
    annual_price: int = strawberry.field(description="Price of one annual period in KRW, after the plan's annual discount.")
    annual_discount_percent: int
    currency: str
    trial_days: int
    features: list[str]
    limits: list[UsageLimit]
    active: bool

    @classmethod
    def of(cls, plan: domain.Plan) -> Plan:
        return cls(
            id=strawberry.ID(plan.id),
            name=plan.name,
            monthly_price=plan.monthly_price,
            annual_price=plan.annual_price,
            annual_discount_percent=plan.annual_discount_percent,
            currency=plan.currency,
            trial_days=plan.trial_days,
            features=list(plan.features),
            limits=[UsageLimit(service=s, limit=v) for s, v in plan.limits.items()],
            active=plan.active,
        )


@strawberry.type
class PointPackage:
    id: strawberry.ID
    points: int
    bonus: int
    price: int


@strawberry.type
class ServiceCost:
    service: str
    points: int


@strawberry.type
class RewardActivity:
    activity: str
    points: int
    once_per_day: bool = strawberry.field(
        description="True where a user can earn it at most once per calendar day (daily_login)."
    )
    once_per_user: bool = strawberry.field(description="True where a user can earn it at most once ever (first_review).")


@strawberry.type
class Catalog:
    plans: list[Plan]
    point_packages: list[PointPackage]
    service_costs: list[ServiceCost]
    reward_activities: list[RewardActivity]

    @classmethod
    def of(cls, catalog: domain.Catalog) -> Catalog:
        return cls(
            plans=[Plan.of(p) for p in catalog.plans.values()],
            point_packages=[
                PointPackage(id=strawberry.ID(p.id), points=p.points, bonus=p.bonus, price=p.price)
                for p in catalog.point_packages.values()
            ],
            service_costs=[ServiceCost(service=s, points=c) for s, c in catalog.service_costs.items()],
            reward_activities=[
                RewardActivity(activity=r.activity, points=r.points, once_per_day=r.once_per_day, once_per_user=r.once_per_user)
                for r in catalog.reward_activities.values()
            ],
        )
