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


@strawberry.enum
class SubscriptionStatus(enum.Enum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    SUSPENDED = "SUSPENDED"


@strawberry.enum
class ProrationPolicy(enum.Enum):
    IMMEDIATE = "IMMEDIATE"
    NEXT_CYCLE = "NEXT_CYCLE"


@strawberry.type
class PlanChange:
    plan_id: strawberry.ID
    billing_cycle: BillingCycle
    effective_at: DateTime


@strawberry.type
class Usage:
    service: str
    used: int
    limit: int | None = strawberry.field(description="null means unlimited")
    remaining: int | None = strawberry.field(description="null means unlimited")
    resets_at: DateTime

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


@strawberry.type
class Subscription:
    id: strawberry.ID
    user_id: strawberry.ID
    plan: Plan
    billing_cycle: BillingCycle
    status: SubscriptionStatus
    price: int = strawberry.field(description="Price per period in KRW, fixed when subscribed (after any promo code).")
    currency: str
    promo_code: str | None
    started_at: DateTime
    current_period_start: DateTime
    current_period_end: DateTime
    trial_ends_at: DateTime | None
    next_billing_at: DateTime | None = strawberry.field(
        description="When the next charge is due; null once no further charge will be made."
    )
    cancel_at_period_end: bool
    canceled_at: DateTime | None
    cancel_reason: str | None
    suspended_at: DateTime | None
    consecutive_failures: int = strawberry.field(
        description="Consecutive failed charge attempts in the current dunning cycle."
    )
    pending_plan_change: PlanChange | None
    usage: list[Usage]
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

    @strawberry.field
    async def payment_method(self, info: Info) -> PaymentMethod | None:
        services = info.context.services
        method_id = self.aggregate.payment_method_id
        customer = await services.run_sync(services.ledger.customer, self.aggregate.user_id) if method_id else None
        method = customer.payment_methods.get(method_id) if customer else None
        return PaymentMethod.of(self.aggregate.user_id, method) if method else None

    @strawberry.field(description="This subscription's payments, oldest first.")
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


@strawberry.type
class PromoCode:
    code: str
    percent_off: int | None
    amount_off: int | None
    duration_periods: int | None
    max_redemptions: int | None
    redemptions: int
    expires_at: DateTime | None
    plan_ids: list[strawberry.ID] | None

    @classmethod
    def of(cls, promo: PromoAggregate) -> PromoCode:
        return cls(
            code=promo.code, percent_off=promo.percent_off, amount_off=promo.amount_off,
            duration_periods=promo.duration_periods, max_redemptions=promo.max_redemptions,
            redemptions=promo.redemptions, expires_at=promo.expires_at,
            plan_ids=[strawberry.ID(p) for p in promo.plan_ids] if promo.plan_ids else None,
        )


@strawberry.type
class Notification:
    id: strawberry.ID
    user_id: strawberry.ID
    kind: str = strawberry.field(
        description="e.g. WELCOME, TRIAL_ENDING, RENEWAL_REMINDER, PAYMENT_SUCCEEDED, PAYMENT_FAILED, "
        "SUBSCRIPTION_SUSPENDED, SUBSCRIPTION_CANCELED, USAGE_WARNING, POINTS_EXPIRING, POINTS_REWARDED"
    )
    subject: str
    body: str
    data: JSON
    created_at: DateTime
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
