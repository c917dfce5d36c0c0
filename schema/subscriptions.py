"""Subscription queries and mutations (SPEC §3).

Single subscriptions are answered from the ledger (read-your-writes); the
`subscriptions` list takes its ids from the read model and loads each from the
ledger. A subscription that is not the caller's answers NOT_FOUND, exactly like
a missing one, unless the caller may read it (ADMIN; AUDITOR for `asOf` reads).
"""
from __future__ import annotations

from typing import Annotated

import strawberry

from domain.errors import NotFound
from domain.subscription import Subscription as SubscriptionAggregate
from schema import permissions
from schema.arguments import AsOf, UserId, idempotency_field
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.enums import BillingCycle
from schema.types.subscriptions import ProrationPolicy, PromoCode, Subscription, Usage


@strawberry.input(description="A new subscription for the caller.")
class SubscribeInput:
    plan_id: strawberry.ID = strawberry.field(description="An active catalog plan (else BAD_USER_INPUT).")
    billing_cycle: BillingCycle = strawberry.field(default=BillingCycle.MONTHLY, description="MONTHLY (default) or ANNUAL.")
    payment_method_id: strawberry.ID | None = strawberry.field(default=None, description=(
        "One of the caller's own active payment methods. Needed when a paid plan is charged now (no trial); "
        "optional for a trial (without one the trial ends EXPIRED) and for free."
    ))
    promo_code: str | None = strawberry.field(
        default=None, description="A promo code; an unusable one answers PROMO_CODE_INVALID."
    )
    skip_trial: bool = strawberry.field(default=False, description="Skip the plan's trial and charge now.")
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="A plan or billing-cycle change.")
class ChangePlanInput:
    subscription_id: strawberry.ID = strawberry.field(description="A TRIALING or ACTIVE subscription.")
    plan_id: strawberry.ID = strawberry.field(description="The active catalog plan to change to.")
    billing_cycle: BillingCycle | None = strawberry.field(
        default=None, description="The cycle to change to; default: keep the current one. A change of cycle is NEXT_CYCLE."
    )
    proration: ProrationPolicy = strawberry.field(
        default=ProrationPolicy.IMMEDIATE, description="IMMEDIATE (default) or NEXT_CYCLE."
    )
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="A cancellation.")
class CancelSubscriptionInput:
    subscription_id: strawberry.ID = strawberry.field(description="A live subscription.")
    at_period_end: bool = strawberry.field(default=True, description=(
        "true (default): CANCELING until the period's end, then CANCELED, no further charge. false: CANCELED "
        "now, the unused part of a paid period refunded."
    ))
    reason: str | None = strawberry.field(default=None, description="Why, kept on the subscription.")
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="Uses of a limited service to count against the plan's quota.")
class RecordUsageInput:
    subscription_id: strawberry.ID = strawberry.field(description="A live subscription.")
    service: str = strawberry.field(description="A catalog service with a quota, e.g. saju_calculations.")
    amount: int = strawberry.field(default=1, description="Uses to record (positive; default 1).")
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="A new promo code.")
class CreatePromoCodeInput:
    code: str = strawberry.field(description="3 to 40 letters, digits, '_' or '-'; unique.")
    percent_off: int | None = strawberry.field(default=None, description="1 to 100; give exactly one of percentOff, amountOff.")
    amount_off: int | None = strawberry.field(default=None, description="KRW off each period (positive).")
    duration_periods: int | None = strawberry.field(
        default=None, description="Number of billing periods the discount applies to; null = forever."
    )
    max_redemptions: int | None = strawberry.field(default=None, description="At least 1; null = no limit.")
    expires_at: DateTime | None = strawberry.field(default=None, description="In the future; null = never.")
    plan_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Catalog plans it is limited to; null = all.")


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
        "The caller's (or userId's) current subscription: the newest one not CANCELED or EXPIRED, else null "
        "(the free tier). Read from the ledger (read-your-writes).",
    ))
    async def current_subscription(self, info: Info, user_id: UserId = None) -> Subscription | None:
        services = info.context.services
        user = permissions.subject(info, user_id)
        sub = await services.run_sync(services.ledger.subscriptions.current_subscription, user)
        return await answer(info, sub) if sub else None

    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscription",
        "One subscription by id, read from the ledger (read-your-writes). asOf: state reconstructed from the "
        "ledger as it stood at that time (AUDITOR or ADMIN, or the owner); null if it did not exist yet.",
    ))
    async def subscription(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The subscription.")],
        as_of: AsOf = None,
    ) -> Subscription | None:
        services = info.context.services
        permissions.caller(info)  # the gate first: a bad token never learns anything about the id
        sub = await services.run_sync(services.ledger.subscription, str(id))
        if not permissions.reaches(info, sub.user_id if sub else None, as_of=as_of is not None):
            raise NotFound(f"subscription {id} not found")
        if as_of is None:
            return await answer(info, sub)
        then = await services.run_sync(services.ledger.as_of, SubscriptionAggregate, sub.id, as_of)
        return Subscription.of(then, info, as_of, as_of=as_of) if then else None

    @strawberry.field(description=permissions.described(
        Root.QUERY, "subscriptions",
        "Every subscription of the user, oldest first. Listed from the subscriptions read model, so one just "
        "created may take a moment (the projection delay) to appear; each is then read from the ledger.",
    ), deprecation_reason="Use subscriptionsPage: the same list, a page at a time.")
    async def subscriptions(self, info: Info, user_id: UserId = None) -> list[Subscription]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        ids = await services.run_sync(services.subscriptions.subscription_ids, user)
        loaded = [await services.run_sync(services.ledger.subscription, sub_id) for sub_id in ids]
        now = services.clock.now()
        return [Subscription.of(sub, info, now) for sub in loaded if sub is not None]


@strawberry.type
class SubscriptionsMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "subscribe",
        "Subscribe the caller, with the caller's own payment method. A paid plan with trial days starts "
        "TRIALING (one trial per user, unless skipTrial); otherwise the first period is charged now: a decline "
        "answers PAYMENT_FAILED and creates no subscription (the FAILED payment is recorded). The price is "
        "fixed now, promo code applied. A user with a live subscription gets CONFLICT (use changePlan).",
        errors=("BAD_USER_INPUT", "NOT_FOUND", "CONFLICT", "PROMO_CODE_INVALID", "PAYMENT_FAILED",
                "IDEMPOTENCY_KEY_REUSED"),
    ))
    async def subscribe(
        self, info: Info, input: Annotated[SubscribeInput, strawberry.argument(description="The plan and how to pay.")]
    ) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.subscribe(
            permissions.caller(info).user_id, str(input.plan_id), input.billing_cycle.value,
            str(input.payment_method_id) if input.payment_method_id else None, input.promo_code, input.skip_trial,
            services.clock.now(), input.idempotency_key,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "changePlan",
        "Change a TRIALING or ACTIVE subscription's plan. IMMEDIATE: switch now; the prorated difference for "
        "the rest of the period is charged (PAYMENT_FAILED on a decline, nothing changed) or refunded. "
        "NEXT_CYCLE (always for a change of cycle): a pendingPlanChange applied at the next renewal.",
        errors=("BAD_USER_INPUT", "CONFLICT", "PAYMENT_FAILED", "IDEMPOTENCY_KEY_REUSED"),
    ))
    async def change_plan(
        self, info: Info, input: Annotated[ChangePlanInput, strawberry.argument(description="The change.")]
    ) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.change_plan(
            acting_as(info), str(input.subscription_id), str(input.plan_id),
            input.billing_cycle.value if input.billing_cycle else None, input.proration.value,
            services.clock.now(), input.idempotency_key, actor=info.context.caller.user_id,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "cancelSubscription",
        "Cancel at the period end (CANCELING, no further charges; resumeSubscription undoes it) or now "
        "(CANCELED; the unused part of the paid period is refunded: round(price × remaining ÷ period length); "
        "nothing for a trial or free).",
        errors=("BAD_USER_INPUT", "CONFLICT", "IDEMPOTENCY_KEY_REUSED"),
    ))
    async def cancel_subscription(
        self, info: Info, input: Annotated[CancelSubscriptionInput, strawberry.argument(description="The cancellation.")]
    ) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.cancel(
            acting_as(info), str(input.subscription_id), input.at_period_end, input.reason,
            services.clock.now(), input.idempotency_key, actor=info.context.caller.user_id,
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "resumeSubscription",
        "Undo a cancel-at-period-end while still CANCELING: back to ACTIVE (or TRIALING), charges resume. "
        "Any other state answers CONFLICT.",
        errors=("CONFLICT",),
    ))
    async def resume_subscription(
        self, info: Info,
        subscription_id: Annotated[strawberry.ID, strawberry.argument(description="A CANCELING subscription.")],
    ) -> Subscription:
        services = info.context.services
        sub = await services.run_sync(
            services.ledger.subscriptions.resume_subscription, acting_as(info), str(subscription_id), services.clock.now()
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "updateSubscriptionPaymentMethod",
        "Set the payment method of a subscription; a PAST_DUE or SUSPENDED one is charged at once: success → "
        "ACTIVE, a decline → PAYMENT_FAILED and the state stays.",
        errors=("BAD_USER_INPUT", "CONFLICT", "PAYMENT_FAILED"),
    ))
    async def update_subscription_payment_method(
        self, info: Info,
        subscription_id: Annotated[strawberry.ID, strawberry.argument(description="The subscription.")],
        payment_method_id: Annotated[strawberry.ID, strawberry.argument(
            description="One of the subscriber's own active payment methods."
        )],
    ) -> Subscription:
        services = info.context.services
        sub = await services.subscription_billing.update_payment_method(
            acting_as(info), str(subscription_id), str(payment_method_id), services.clock.now()
        )
        return await answer(info, sub)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "recordUsage",
        "Count uses of a limited service in the current monthly window. Over the plan's limit answers "
        "USAGE_LIMIT_EXCEEDED and records nothing; the first use reaching 80% queues a USAGE_WARNING.",
        errors=("BAD_USER_INPUT", "CONFLICT", "USAGE_LIMIT_EXCEEDED", "IDEMPOTENCY_KEY_REUSED"),
    ))
    async def record_usage(
        self, info: Info, input: Annotated[RecordUsageInput, strawberry.argument(description="The uses.")]
    ) -> Usage:
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

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "createPromoCode",
        "Create a promo code for subscribe. An existing code answers CONFLICT.",
        errors=("BAD_USER_INPUT", "CONFLICT"),
    ))
    async def create_promo_code(
        self, info: Info, input: Annotated[CreatePromoCodeInput, strawberry.argument(description="The code.")]
    ) -> PromoCode:
        permissions.caller(info)
        services = info.context.services
        promo = await services.run_sync(
            services.ledger.subscriptions.create_promo_code, input.code, input.percent_off, input.amount_off, input.duration_periods,
            input.max_redemptions, input.expires_at, [str(p) for p in input.plan_ids] if input.plan_ids else None,
            services.clock.now(),
        )
        return PromoCode.of(promo)
