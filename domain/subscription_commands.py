"""Subscription commands of the ledger (SPEC §3): the ledger halves of subscribe,
change plan, cancel, resume, set the payment method, record usage, and promo codes.

Flows that also call a gateway are split into a quote (decide, validate, nothing
saved) and an apply step (saved in one transaction with its payments or
refunds); `domain/subscription_billing.py` awaits the gateway in between.
`user_id=None` means an ADMIN acting on anyone's subscription; otherwise a
foreign subscription answers NOT_FOUND exactly like a missing one.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.catalog import Plan
from domain.errors import Conflict, InvalidInput, NotFound, PromoCodeInvalid
from domain.idempotency import Idempotency
from domain.ids import customer_id
from domain.payments.payment import Payment
from domain.promo import PromoCode, check_promo_input, promo_id
from domain.renewal_commands import START, RenewalCommands, lock_key
from domain.subscription import PAST_DUE, SUSPENDED, Subscription
from domain.subscription_changes import SubscriptionChanges
from domain.subscription_rules import period_order_id, period_price

if TYPE_CHECKING:
    from domain.ledger import Ledger

class SubscriptionCommands(SubscriptionChanges, RenewalCommands):
    """Handed the ledger; `ledger.subscriptions`. Its parts (changes, renewals) are one area."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # ------------------------------------------------------------ reads
    def owned_subscription(self, subscription_id: Any, user_id: str | None) -> Subscription:
        sub = self.ledger.subscription(subscription_id)
        if sub is None or (user_id is not None and sub.user_id != user_id):
            raise NotFound(f"subscription {subscription_id} not found")
        return sub

    def current_subscription(self, user_id: str) -> Subscription | None:
        customer = self.ledger.customer(user_id)
        live = customer.live_subscription if customer else None
        sub = self.ledger.subscription(live) if live else None
        return sub if sub is not None and sub.live else None

    def promo_code(self, code: str) -> PromoCode | None:
        return self.ledger.load(PromoCode, promo_id(code))

    def plan_of(self, sub: Subscription) -> Plan | None:
        return self.ledger.catalog.plans.get(sub.plan_id)

    # ------------------------------------------------------------ promo codes
    def create_promo_code(
        self, code: str, percent_off: int | None, amount_off: int | None, duration_periods: int | None,
        max_redemptions: int | None, expires_at: datetime | None, plan_ids: list[str] | None, now: datetime,
    ) -> PromoCode:
        check_promo_input(code, percent_off, amount_off, duration_periods, max_redemptions, plan_ids, self.ledger.catalog.plans)
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expiresAt must be in the future")

        def body() -> tuple[PromoCode, list[Any]]:
            if self.promo_code(code) is not None:
                raise Conflict(f"promo code {code.strip()} already exists")
            promo = PromoCode(
                code=code.strip(), percent_off=percent_off, amount_off=amount_off, duration_periods=duration_periods,
                max_redemptions=max_redemptions, expires_at=expires_at, plan_ids=plan_ids or None, at=now,
            )
            return promo, [promo]

        return self.ledger.run(body, lock=[promo_id(code)])

    # ------------------------------------------------------------ subscribe
    def begin_subscription(
        self, user_id: str, plan_id: str, cycle: str, method_id: str | None, promo_code: str | None,
        skip_trial: bool, now: datetime, key: str | None,
    ) -> Subscription | Payment:
        """A trial or free subscription is created here; a paid start answers its first
        payment, PENDING (the subscription is created when it succeeds). A repeat of the
        idempotency key answers the same subscription or payment, in whatever state it reached."""
        plan = self.ledger.catalog.plan(plan_id)
        if not plan.active:
            raise InvalidInput(f"plan {plan_id} is no longer offered")
        list_price = plan.price(cycle)
        sub_id = str(uuid.uuid4())
        start_order = period_order_id(uuid.UUID(sub_id), 0, 1)

        def body() -> tuple[Subscription | Payment, list[Any]]:
            customer = self.ledger.customer_or_new(user_id, now)
            method = customer.method(method_id) if method_id else None
            customer.open_subscription(sub_id, now)
            promo = None
            if promo_code is not None:
                promo = self.promo_code(promo_code) if promo_code.strip() else None
                if promo is None:
                    raise PromoCodeInvalid(f"unknown promo code {promo_code!r}")
                promo.redeem(sub_id, plan.id, now)
            terms = promo.terms if promo else None
            trial = plan.trial_days > 0 and list_price > 0 and not skip_trial and not customer.had_trial
            first_price = period_price(list_price, terms, plan.id, 0)
            if trial or first_price == 0:
                if trial:
                    customer.start_trial(now)
                sub = Subscription.start(
                    subscription_id=sub_id, user_id=user_id, plan_id=plan.id, cycle=cycle, list_price=list_price,
                    promo=terms, payment_method_id=method_id, trial_days=plan.trial_days if trial else 0, now=now,
                    tz=self.ledger.tz,
                )
                return sub, [a for a in (sub, customer, promo) if a is not None]
            if method is None:
                raise InvalidInput(f"plan {plan.id} is charged now: give a paymentMethodId")
            payment = Payment(
                order_id=start_order, order_name=f"{plan.id} {cycle.lower()} subscription", user_id=user_id,
                provider=method["provider"], kind="SUBSCRIPTION", amount=first_price, payment_method_id=method["id"],
                subscription_id=sub_id, attempt=1,
                purpose={"type": START, "plan_id": plan.id, "cycle": cycle, "list_price": list_price, "promo": terms},
                at=now,
            )
            return payment, [a for a in (payment, customer, promo) if a is not None]

        def replay(stored: dict[str, Any]) -> Subscription | Payment:
            started = self.ledger.subscription(stored["subscription_id"]) or self.ledger.payment(stored["payment_id"])
            if started is None:
                raise NotFound(f"subscription {stored['subscription_id']} not found")
            return started

        def encode(started: Subscription | Payment) -> dict[str, Any]:
            if isinstance(started, Payment):
                return {"subscription_id": started.subscription_id, "payment_id": str(started.id)}
            return {"subscription_id": str(started.id), "payment_id": None}

        request = {"planId": plan_id, "cycle": cycle, "paymentMethodId": method_id, "promoCode": promo_code,
                   "skipTrial": skip_trial}
        return self.ledger.run(
            body, lock=[customer_id(user_id)], idempotency=Idempotency(user_id, "subscribe", key, request, now),
            replay=replay, encode=encode,
        )

    # ------------------------------------------------------------ resume
    def resume_subscription(self, user_id: str | None, subscription_id: Any, now: datetime) -> Subscription:
        def body() -> tuple[Subscription, list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            sub.resume(now)
            return sub, [sub]

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    # ------------------------------------------------------------ payment method, usage
    def set_subscription_method(
        self, user_id: str | None, subscription_id: Any, method_id: str, now: datetime
    ) -> tuple[Subscription, bool]:
        """Set the method; answers (subscription, True) when it must be charged at once
        instead (PAST_DUE, SUSPENDED): the method is then kept only if that charge succeeds."""

        def body() -> tuple[tuple[Subscription, bool], list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            customer = self.ledger.customer(sub.user_id)
            if customer is None:
                raise NotFound(f"payment method {method_id} not found")
            customer.method(method_id)
            sub.check_live()
            if sub.status in (PAST_DUE, SUSPENDED):
                return (sub, True), []
            sub.set_payment_method(method_id, now)
            return (sub, False), [sub]

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    def record_usage(
        self, user_id: str | None, subscription_id: Any, service: str, amount: int, now: datetime,
        *, actor: str, key: str | None = None,
    ) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidInput(f"amount must be a positive integer, got {amount!r}")
        if not self.ledger.catalog.known_service(service):
            raise InvalidInput(f"unknown service {service!r}")

        def body() -> tuple[dict[str, Any], list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            plan = self.plan_of(sub)
            sub.record_usage(service, amount, plan.limit_for(service) if plan else 0, now, self.ledger.tz)
            return usage_entry(sub, plan, service, now, self.ledger.tz), [sub]

        request = {"subscriptionId": str(subscription_id), "service": service, "amount": amount}
        return self.ledger.run(
            body, lock=[lock_key(subscription_id)], idempotency=Idempotency(actor, "recordUsage", key, request, now),
            replay=lambda stored: stored, encode=lambda usage: usage,
        )

def usage_entry(sub: Subscription, plan: Plan | None, service: str, now: datetime, tz: Any) -> dict[str, Any]:
    start, end = sub.usage_window(now, tz)
    used = sub.used(service, start)
    limit = plan.limit_for(service) if plan else 0
    remaining = None if limit is None else max(0, limit - used)
    return {"service": service, "used": used, "limit": limit, "remaining": remaining, "resets_at": end}


def usage_report(sub: Subscription, plan: Plan | None, now: datetime, tz: Any) -> list[dict[str, Any]]:
    """Every service the plan lists, then any other service used in the window."""
    services = list(plan.limits) if plan else []
    start, _ = sub.usage_window(now, tz)
    services += [s for s in sub.usage if s not in services and sub.used(s, start)]
    return [usage_entry(sub, plan, s, now, tz) for s in services]
