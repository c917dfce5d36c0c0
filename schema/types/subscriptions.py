"""Subscription, usage, plan change, promo code and notification types (schema.graphql)."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from domain import catalog as domain_catalog
from domain.payments.payment import Payment as PaymentAggregate
from domain.promo import PromoCode as PromoAggregate
from domain.subscription import Subscription as SubscriptionAggregate
from domain.subscription_commands import usage_report
from schema.context import Info
from schema.scalars import JSON, DateTime
from schema.types.catalog import Plan
from schema.types.enums import BillingCycle
from schema.types.notifications import NotificationDeliveryStatus, delivery_status
from schema.types.payments import Payment, PaymentMethod


@strawberry.enum(description="Where a subscription stands. CANCELED and EXPIRED are final; the others are live.")
class SubscriptionStatus(enum.Enum):
    TRIALING = strawberry.enum_value("TRIALING", description="In the free trial; the first period is charged at its end.")
    ACTIVE = strawberry.enum_value("ACTIVE", description="Paid for the current period; renews at nextBillingAt.")
    PAST_DUE = strawberry.enum_value(
        "PAST_DUE", description="A renewal or trial-end charge failed; retried 3 and 6 days after the first failure."
    )
    CANCELING = strawberry.enum_value(
        "CANCELING", description="Canceled at period end: no further charges, CANCELED at the period's end."
    )
    CANCELED = strawberry.enum_value("CANCELED", description="Ended by a cancellation. Final.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="A trial ended without a payment method. Final.")
    SUSPENDED = strawberry.enum_value(
        "SUSPENDED", description="Three charge attempts failed: no more charges until updateSubscriptionPaymentMethod."
    )


@strawberry.enum(description="When a plan change takes effect (changePlan).")
class ProrationPolicy(enum.Enum):
    IMMEDIATE = strawberry.enum_value("IMMEDIATE", description=(
        "Switch now: the prorated difference for the rest of the period is charged (upgrade) or refunded "
        "(downgrade). A change of billing cycle is always NEXT_CYCLE."
    ))
    NEXT_CYCLE = strawberry.enum_value(
        "NEXT_CYCLE", description="Record a pending change, applied and charged at the new price at the next renewal."
    )


@strawberry.type(description="A plan change waiting for the next renewal.")
class PlanChange:
    plan_id: strawberry.ID = strawberry.field(description="The plan it changes to.")
    billing_cycle: BillingCycle = strawberry.field(description="The billing cycle it changes to.")
    effective_at: DateTime = strawberry.field(description="When it applies: the current period's end.")


@strawberry.type(description="Use of one service in the current monthly quota window.")
class Usage:
    service: str = strawberry.field(description="The service.")
    used: int = strawberry.field(description="Uses recorded in the window.")
    limit: int | None = strawberry.field(description="Uses allowed in the window; null means unlimited.")
    remaining: int | None = strawberry.field(description="limit − used; null means unlimited.")
    resets_at: DateTime = strawberry.field(description="When the window ends and the count starts again.")

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Usage:
        return cls(
            service=entry["service"], used=entry["used"], limit=entry["limit"], remaining=entry["remaining"],
            resets_at=entry["resets_at"],
        )


def _plan(sub: SubscriptionAggregate, catalog: domain_catalog.Catalog) -> Plan:
    plan = catalog.plans.get(sub.plan_id)
    if plan is None:  # retired from a replaced catalog: describe what the subscription locked
        plan = domain_catalog.Plan(
            id=sub.plan_id, name=sub.plan_id, monthly_price=sub.list_price if sub.cycle == "MONTHLY" else 0,
            annual_discount_percent=0, trial_days=0, features=(), limits={}, active=False,
        )
    return Plan.of(plan)


@strawberry.type(description=(
    "A user's subscription to a plan, read from the ledger (read-your-writes). Times are the service's clock."
))
class Subscription:
    id: strawberry.ID = strawberry.field(description="The subscription's id (subscriptionId in other operations).")
    user_id: strawberry.ID = strawberry.field(description="The subscriber.")
    plan: Plan = strawberry.field(description="The plan subscribed to (as the catalog describes it now).")
    billing_cycle: BillingCycle = strawberry.field(description="MONTHLY or ANNUAL periods.")
    status: SubscriptionStatus = strawberry.field(description="Where it stands.")
    price: int = strawberry.field(description="Price per period in KRW, fixed when subscribed (after any promo code).")
    currency: str = strawberry.field(description="Always KRW.")
    promo_code: str | None = strawberry.field(description="The promo code applied when subscribing, if any.")
    started_at: DateTime = strawberry.field(description="When it was created; the anchor of its periods and quota windows.")
    current_period_start: DateTime = strawberry.field(description="Start of the current period (or trial).")
    current_period_end: DateTime = strawberry.field(description="End of the current period (or trial).")
    trial_ends_at: DateTime | None = strawberry.field(description="End of the trial; null if it had none.")
    next_billing_at: DateTime | None = strawberry.field(
        description="When the next charge is due; null once no further charge will be made."
    )
    cancel_at_period_end: bool = strawberry.field(description="True while CANCELING: it ends at currentPeriodEnd.")
    canceled_at: DateTime | None = strawberry.field(description="When it became CANCELED (at once, or at the period end of a CANCELING one); null before.")
    cancel_reason: str | None = strawberry.field(description="The reason given to cancelSubscription.")
    suspended_at: DateTime | None = strawberry.field(description="When it became SUSPENDED; null otherwise.")
    consecutive_failures: int = strawberry.field(
        description="Consecutive failed charge attempts in the current dunning cycle."
    )
    pending_plan_change: PlanChange | None = strawberry.field(description="A NEXT_CYCLE change waiting for the next renewal.")
    usage: list[Usage] = strawberry.field(description="Use in the current quota window of each service the plan lists, then of any other service used in it.")
    version: int = strawberry.field(
        description="Ledger stream version: the number of events recorded for this subscription."
    )
    aggregate: strawberry.Private[SubscriptionAggregate]
    as_of: strawberry.Private[datetime | None]

    @classmethod
    def of(cls, sub: SubscriptionAggregate, info: Info, now: datetime, as_of: datetime | None = None) -> Subscription:
        ledger = info.context.services.ledger
        change = sub.pending_change
        return cls(
            id=strawberry.ID(str(sub.id)),
            user_id=strawberry.ID(sub.user_id),
            plan=_plan(sub, ledger.catalog),
            billing_cycle=BillingCycle(sub.cycle),
            status=SubscriptionStatus(sub.status),
            price=sub.price,
            currency="KRW",
            promo_code=sub.promo["code"] if sub.promo else None,
            started_at=sub.started_at,
            current_period_start=sub.period_start,
            current_period_end=sub.period_end,
            trial_ends_at=sub.trial_ends_at,
            next_billing_at=sub.next_charge_at,
            cancel_at_period_end=sub.cancel_at_period_end,
            canceled_at=sub.canceled_at,
            cancel_reason=sub.cancel_reason,
            suspended_at=sub.suspended_at,
            consecutive_failures=sub.consecutive_failures,
            pending_plan_change=PlanChange(
                plan_id=strawberry.ID(change["plan_id"]), billing_cycle=BillingCycle(change["cycle"]),
                effective_at=change["effective_at"],
            ) if change else None,
            usage=[Usage.of(entry) for entry in usage_report(sub, ledger.catalog.plans.get(sub.plan_id), now, ledger.tz)],
            version=sub.version,
            aggregate=sub,
            as_of=as_of,
        )

    @strawberry.field(description="The payment method its charges go to; null without one (free plan, trial without card).")
    async def payment_method(self, info: Info) -> PaymentMethod | None:
        services = info.context.services
        method_id = self.aggregate.payment_method_id
        customer = await services.run_sync(services.ledger.customer, self.aggregate.user_id) if method_id else None
        method = customer.payment_methods.get(method_id) if customer else None
        return PaymentMethod.of(self.aggregate.user_id, method) if method else None

    @strawberry.field(description="This subscription's payments, oldest first, read from the ledger (read-your-writes).")
    async def payments(self, info: Info) -> list[Payment]:
        ledger = info.context.services.ledger
        run_sync = info.context.services.run_sync
        loaded = []
        for pay_id in self.aggregate.payment_ids:
            if self.as_of is None:
                loaded.append(await run_sync(ledger.payment, pay_id))
            else:
                loaded.append(await run_sync(ledger.as_of, PaymentAggregate, UUID(pay_id), self.as_of))
        return [Payment.of(p) for p in loaded if p is not None]


@strawberry.type(description="A discount code for subscribe (createPromoCode).")
class PromoCode:
    code: str = strawberry.field(description="The code users enter.")
    percent_off: int | None = strawberry.field(description="Percent off the price; null when amountOff is set.")
    amount_off: int | None = strawberry.field(description="KRW off the price; null when percentOff is set.")
    duration_periods: int | None = strawberry.field(description="Billing periods the discount applies to; null = forever.")
    max_redemptions: int | None = strawberry.field(description="How many subscriptions may use it; null = no limit.")
    redemptions: int = strawberry.field(description="How many have used it.")
    expires_at: DateTime | None = strawberry.field(description="After this it is refused; null = never.")
    plan_ids: list[strawberry.ID] | None = strawberry.field(description="The only plans it applies to; null = every plan.")

    @classmethod
    def of(cls, promo: PromoAggregate) -> PromoCode:
        return cls(
            code=promo.code, percent_off=promo.percent_off, amount_off=promo.amount_off,
            duration_periods=promo.duration_periods, max_redemptions=promo.max_redemptions,
            redemptions=promo.redemptions, expires_at=promo.expires_at,
            plan_ids=[strawberry.ID(p) for p in promo.plan_ids] if promo.plan_ids else None,
        )


@strawberry.type(description="A message to a user from the notifications outbox (a read model of the ledger).")
class Notification:
    id: strawberry.ID = strawberry.field(description="The notification's id.")
    user_id: strawberry.ID = strawberry.field(description="The recipient.")
    kind: str = strawberry.field(
        description="e.g. WELCOME, TRIAL_ENDING, RENEWAL_REMINDER, PAYMENT_SUCCEEDED, PAYMENT_FAILED, "
        "SUBSCRIPTION_SUSPENDED, SUBSCRIPTION_CANCELED, USAGE_WARNING, POINTS_EXPIRING, POINTS_REWARDED"
    )
    subject: str = strawberry.field(description="Subject line.")
    body: str = strawberry.field(description="Text of the message.")
    data: JSON = strawberry.field(description="The facts it was written from (amounts, dates, ids), by kind.")
    created_at: DateTime = strawberry.field(description="When the event that caused it happened.")
    sent_at: DateTime | None = strawberry.field(description=(
        "When the SMTP server accepted the e-mail (its 250 reply); null until then, and for a notification "
        "only logged (development without SMTP) or not sent."))
    delivery_status: NotificationDeliveryStatus = strawberry.field(description=(
        "Where its delivery stands: PENDING, SENDING, RETRYING, SENT, LOGGED, SKIPPED, FAILED or UNCONFIRMED."))
    delivery_attempts: int = strawberry.field(description=(
        "Attempts made to hand it to the SMTP server so far (a logged notification counts one)."))
    last_delivery_error: str | None = strawberry.field(description=(
        "Why the last attempt failed (the server's reply or the connection error, without addresses); "
        "null after a success and before any failure."))
    last_attempt_at: DateTime | None = strawberry.field(description="When the last attempt began (wall clock).")
    next_attempt_at: DateTime | None = strawberry.field(description=(
        "When a RETRYING notification is tried again (wall clock); null otherwise."))

    @classmethod
    def of(cls, row: dict[str, Any]) -> Notification:
        retrying = row["delivery_state"].value == "RETRYING"
        return cls(
            id=strawberry.ID(row["id"]), user_id=strawberry.ID(row["user_id"]), kind=row["kind"],
            subject=row["subject"], body=row["body"], data=row["data"], created_at=row["created_at"],
            sent_at=row["sent_at"], delivery_status=delivery_status(row["delivery_state"]),
            delivery_attempts=row["delivery_attempts"], last_delivery_error=row["delivery_error"],
            last_attempt_at=row["last_attempt_at"], next_attempt_at=row["next_attempt_at"] if retrying else None,
        )
