"""Catalog types (schema.graphql, catalog)."""
from __future__ import annotations

import strawberry

from domain import catalog as domain


@strawberry.type(description="A plan's monthly quota for one service (recordUsage counts against it).")
class UsageLimit:
    service: str = strawberry.field(description="The service, e.g. saju_calculations, tarot_readings.")
    limit: int | None = strawberry.field(description="Uses allowed per monthly quota window; null means unlimited.")


@strawberry.type(description="A subscription plan of the catalog. Prices are whole KRW.")
class Plan:
    id: strawberry.ID = strawberry.field(description="The plan id to subscribe with: free, basic, premium, master.")
    name: str = strawberry.field(description="Display name.")
    monthly_price: int = strawberry.field(description="Price of one monthly period in KRW.")
    annual_price: int = strawberry.field(description="Price of one annual period in KRW, after the plan's annual discount.")
    annual_discount_percent: int = strawberry.field(description="Discount of the annual price against 12 monthly ones, in percent.")
    currency: str = strawberry.field(description="Always KRW.")
    trial_days: int = strawberry.field(
        description="Length of the free trial a first subscription to the plan starts with (0: none). One trial per user."
    )
    features: list[str] = strawberry.field(description="Feature lines for display.")
    limits: list[UsageLimit] = strawberry.field(
        description="Monthly quotas. A service not listed is not allowed on the plan (except master: all unlimited)."
    )
    active: bool = strawberry.field(description="False for a plan no longer offered; existing subscriptions keep it.")

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


@strawberry.type(description="A package of points for sale (purchasePoints).")
class PointPackage:
    id: strawberry.ID = strawberry.field(description="The package id: starter, regular, premium, mega.")
    points: int = strawberry.field(description="Points bought.")
    bonus: int = strawberry.field(description="Extra points credited with them, in the same lot.")
    price: int = strawberry.field(description="Price in KRW.")


@strawberry.type(description="What a service costs in points (spendPoints with `service`).")
class ServiceCost:
    service: str = strawberry.field(description="The service, e.g. tarot_three, consultation_30min.")
    points: int = strawberry.field(description="Points one use costs.")


@strawberry.type(description="An activity that earns points (rewardPoints).")
class RewardActivity:
    activity: str = strawberry.field(description="The activity, e.g. daily_login, referral_signup.")
    points: int = strawberry.field(description="Points earned each time.")
    once_per_day: bool = strawberry.field(
        description="True where a user can earn it at most once per calendar day (daily_login)."
    )
    once_per_user: bool = strawberry.field(description="True where a user can earn it at most once ever (first_review).")


@strawberry.type(description="What is for sale and what it costs: the built-in catalog or SUBLEDGER_CATALOG's.")
class Catalog:
    plans: list[Plan] = strawberry.field(description="Every plan, inactive ones included.")
    point_packages: list[PointPackage] = strawberry.field(description="Point packages for sale.")
    service_costs: list[ServiceCost] = strawberry.field(description="Point cost of each service.")
    reward_activities: list[RewardActivity] = strawberry.field(description="Activities that earn points.")

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
