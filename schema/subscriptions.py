"""Subscription queries and mutations (SPEC §3).

Single subscriptions are answered from the ledger (read-your-writes); the
`subscriptions` list takes its ids from the read model and loads each from the
ledger. A subscription that is not the caller's answers NOT_FOUND, exactly like
a missing one, unless the caller may read it (ADMIN; AUDITOR for `asOf` reads).
"""
from __future__ import annotations


import strawberry

from domain.errors import NotFound
from domain.subscription import Subscription as SubscriptionAggregate
from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.enums import BillingCycle
from schema.types.subscriptions import ProrationPolicy, PromoCode, Subscription, Usage


@strawberry.input
class SubscribeInput:
    plan_id: strawberry.ID
    billing_cycle: BillingCycle = BillingCycle.MONTHLY
    payment_method_id: strawberry.ID | None = None
    promo_code: str | None = None
    skip_trial: bool = strawberry.field(default=False, description="Skip the plan's trial and charge now.")
    idempotency_key: str | None = None


@strawberry.input
class ChangePlanInput:
    subscription_id: strawberry.ID
    plan_id: strawberry.ID
    billing_cycle: BillingCycle | None = None
    proration: ProrationPolicy = ProrationPolicy.IMMEDIATE
    idempotency_key: str | None = None


@strawberry.input
class CancelSubscriptionInput:
    subscription_id: strawberry.ID
    at_period_end: bool = True
    reason: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class RecordUsageInput:
    subscription_id: strawberry.ID
    service: str
    amount: int = 1
    idempotency_key: str | None = None


@strawberry.input
class CreatePromoCodeInput:
    code: str
    percent_off: int | None = None
    amount_off: int | None = None
    duration_periods: int | None = strawberry.field(
        default=None, description="Number of billing periods the discount applies to; null = forever."
    )
    max_redemptions: int | None = None
    expires_at: DateTime | None = None
    plan_ids: list[strawberry.ID] | None = None


def acting_as(info: Info) -> str | None:
    """Whose subscriptions the caller may change: their own, or anyone's (None), per the field's rule."""
    return permissions.owner_filter(info)


async def answer(info: Info, sub: SubscriptionAggregate) -> Subscription:
    services = info.context.services
    return Subscription.of(sub, info, services.clock.now())


@strawberry.type
class SubscriptionsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "currentSubscription",
        "The caller's (or userId's) current subscription: the newest one not CANCELED or EXPIRED, else null.",
    ))
    async def current_subscription(self, info: Info, user_id: strawberry.ID | None = None) -> Subscription | None:
        services = info.context.services
        user = permissions.subject(info, user_id)
        sub = await services.run_sync(services.ledger.subscriptions.current_subscription, user)
        return await answer(info, sub) if sub else None

    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscription",
        "asOf: state reconstructed from the ledger as it stood at that time (AUDITOR or ADMIN, or the owner).",
    ))
    async def subscription(self, info: Info, id: strawberry.ID, as_of: DateTime | None = None) -> Subscription | None:
        services = info.context.services
        permissions.caller(info)  # the gate first: a bad token never learns anything about the id
        sub = await services.run_sync(services.ledger.subscription, str(id))
        if not permissions.reaches(info, sub.user_id if sub else None, as_of=as_of is not None):
            raise NotFound(f"subscription {id} not found")
        if as_of is None:
            return await answer(info, sub)
        then = await services.run_sync(services.ledger.as_of, SubscriptionAggregate, sub.id, as_of)
        return Subscription.of(then, info, as_of, as_of=as_of) if then else None

    @strawberry.field(description=permissions.described(Root.QUERY, "subscriptions", "Oldest first."))
    async def subscriptions(self, info: Info, user_id: strawberry.ID | None = None) -> list[Subscription]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        ids = await services.run_sync(services.subscriptions.subscription_ids, user)
        loaded = [await services.run_sync(services.ledger.subscription, sub_id) for sub_id in ids]
        now = services.clock.now()
        return [Subscription.of(sub, info, now) for sub in loaded if sub is not None]


@strawberry.type
class SubscriptionsMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "subscribe", "For the caller, with the caller's own payment method."
    ))
    async def subscribe(self, info: Info, input: SubscribeInput) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.subscribe(
            permissions.caller(info).user_id, str(input.plan_id), input.billing_cycle.value,
            str(input.payment_method_id) if input.payment_method_id else None, input.promo_code, input.skip_trial,
            services.clock.now(), input.idempotency_key,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "changePlan"))
    async def change_plan(self, info: Info, input: ChangePlanInput) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.change_plan(
            acting_as(info), str(input.subscription_id), str(input.plan_id),
            input.billing_cycle.value if input.billing_cycle else None, input.proration.value,
            services.clock.now(), input.idempotency_key, actor=info.context.caller.user_id,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "cancelSubscription"))
    async def cancel_subscription(self, info: Info, input: CancelSubscriptionInput) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.cancel(
            acting_as(info), str(input.subscription_id), input.at_period_end, input.reason,
            services.clock.now(), input.idempotency_key, actor=info.context.caller.user_id,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "resumeSubscription", "Undo a cancel-at-period-end while still CANCELING."
    ))
    async def resume_subscription(self, info: Info, subscription_id: strawberry.ID) -> Subscription:
        services = info.context.services
        sub = await services.run_sync(
            services.ledger.subscriptions.resume_subscription, acting_as(info), str(subscription_id), services.clock.now()
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "updateSubscriptionPaymentMethod",
        "Set the payment method of a subscription; a PAST_DUE or SUSPENDED one is charged at once.",
    ))
    async def update_subscription_payment_method(
        self, info: Info, subscription_id: strawberry.ID, payment_method_id: strawberry.ID
    ) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.update_payment_method(
            acting_as(info), str(subscription_id), str(payment_method_id), services.clock.now()
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "recordUsage"))
    async def record_usage(self, info: Info, input: RecordUsageInput) -> Usage:
        services = info.context.services
        owner = acting_as(info)
        caller = info.context.caller
        usage = await services.run_sync(
            lambda: services.ledger.subscriptions.record_usage(
                owner, str(input.subscription_id), input.service, input.amount, services.clock.now(),
                actor=caller.user_id, key=input.idempotency_key,
            )
        )
        return Usage.of(usage)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "createPromoCode"))
    async def create_promo_code(self, info: Info, input: CreatePromoCodeInput) -> PromoCode:
        permissions.caller(info)
        services = info.context.services
        promo = await services.run_sync(
            services.ledger.subscriptions.create_promo_code, input.code, input.percent_off, input.amount_off, input.duration_periods,
            input.max_redemptions, input.expires_at, [str(p) for p in input.plan_ids] if input.plan_ids else None,
            services.clock.now(),
        )
        return PromoCode.of(promo)
