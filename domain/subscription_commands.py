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
from domain.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound, PaymentFailed, PromoCodeInvalid
from domain.idempotency import Idempotency, fingerprint
from domain.ids import NAMESPACE, customer_id, payment_id
from domain.payment import FAILED, Payment
from domain.promo import PromoCode, check_promo_input, promo_id
from domain.renewal_commands import PRORATION, START, RenewalCommands
from domain.subscription import CANCELING, PAST_DUE, SUSPENDED, TRIALING, Subscription
from domain.subscription_rules import period_order_id, period_price, proration_order_id, split_refund
from domain.periods import proration_net

if TYPE_CHECKING:
    from domain.ledger import Ledger

MAX_REASON = 500


class SubscriptionCommands(RenewalCommands):
    # ------------------------------------------------------------ reads
    def owned_subscription(self: Ledger, subscription_id: Any, user_id: str | None) -> Subscription:
        sub = self.subscription(subscription_id)
        if sub is None or (user_id is not None and sub.user_id != user_id):
            raise NotFound(f"subscription {subscription_id} not found")
        return sub

    def current_subscription(self: Ledger, user_id: str) -> Subscription | None:
        customer = self.customer(user_id)
        live = customer.live_subscription if customer else None
        sub = self.subscription(live) if live else None
        return sub if sub is not None and sub.live else None

    def promo_code(self: Ledger, code: str) -> PromoCode | None:
        return self.load(PromoCode, promo_id(code))

    def plan_of(self: Ledger, sub: Subscription) -> Plan | None:
        return self.catalog.plans.get(sub.plan_id)

    # ------------------------------------------------------------ promo codes
    def create_promo_code(
        self: Ledger, code: str, percent_off: int | None, amount_off: int | None, duration_periods: int | None,
        max_redemptions: int | None, expires_at: datetime | None, plan_ids: list[str] | None, now: datetime,
    ) -> PromoCode:
        check_promo_input(code, percent_off, amount_off, duration_periods, max_redemptions, plan_ids, self.catalog.plans)
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

        return self.run(body, lock=[promo_id(code)])

    # ------------------------------------------------------------ subscribe
    def begin_subscription(
        self: Ledger, user_id: str, plan_id: str, cycle: str, method_id: str | None, promo_code: str | None,
        skip_trial: bool, now: datetime, key: str | None,
    ) -> Subscription | Payment:
        """A trial or free subscription is created here; a paid start answers its first
        payment, PENDING (the subscription is created when it succeeds)."""
        plan = self.catalog.plan(plan_id)
        if not plan.active:
            raise InvalidInput(f"plan {plan_id} is no longer offered")
        list_price = plan.price(cycle)
        request = {"planId": plan_id, "cycle": cycle, "method": method_id, "promo": promo_code, "skipTrial": skip_trial}
        request_print = fingerprint("subscribe", request)
        sub_id = str(uuid.uuid5(NAMESPACE, f"subscription:{user_id}:{key}") if key else uuid.uuid4())
        start_order = period_order_id(uuid.UUID(sub_id), 0, 1)

        def body() -> tuple[Subscription | Payment, list[Any]]:
            earlier = self.subscription(sub_id) or self.payment(payment_id(start_order))
            if earlier is not None:
                return _repeat(earlier, request_print, key), []
            customer = self.customer_or_new(user_id, now)
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
                    tz=self.tz, request_print=request_print if key else None,
                )
                return sub, [a for a in (sub, customer, promo) if a is not None]
            if method is None:
                raise InvalidInput(f"plan {plan.id} is charged now: give a paymentMethodId")
            payment = Payment(
                order_id=start_order, order_name=f"{plan.id} {cycle.lower()} subscription", user_id=user_id,
                provider=method["provider"], kind="SUBSCRIPTION", amount=first_price, payment_method_id=method["id"],
                subscription_id=sub_id, attempt=1,
                purpose={"type": START, "plan_id": plan.id, "cycle": cycle, "list_price": list_price, "promo": terms,
                         "fingerprint": request_print},
                at=now,
            )
            return payment, [a for a in (payment, customer, promo) if a is not None]

        return self.run(body, lock=[uuid.UUID(sub_id), customer_id(user_id)])

    # ------------------------------------------------------------ change plan
    def plan_change_quote(
        self: Ledger, user_id: str | None, subscription_id: Any, plan_id: str, cycle: str | None, policy: str,
        now: datetime, key: str | None,
    ) -> dict[str, Any]:
        """What a plan change would do now (SPEC §3): mode "replay", "clear", "schedule",
        "switch", "charge" (a PRORATION payment of `net`) or "refund" (`refunds`)."""
        sub = self.owned_subscription(subscription_id, user_id)
        plan = self.catalog.plan(plan_id)
        if not plan.active:
            raise InvalidInput(f"plan {plan_id} is no longer offered")
        cycle = cycle or sub.cycle
        list_price = plan.price(cycle)
        print_ = fingerprint("changePlan", {"sub": str(sub.id), "plan": plan_id, "cycle": cycle, "policy": policy})
        quote = {"plan_id": plan.id, "cycle": cycle, "list_price": list_price, "net": 0, "refunds": [],
                 "version": sub.version, "key": key, "fingerprint": print_}
        if sub.seen_request(key, print_):
            return {**quote, "mode": "replay"}
        sub.check_changeable()
        sub.check_no_charge_in_flight()
        if plan.id == sub.plan_id and cycle == sub.cycle:
            if sub.pending_change is None:
                raise Conflict(f"subscription {sub.id} is already on {plan.id} {cycle}")
            return {**quote, "mode": "clear"}
        if list_price > 0 and sub.status != TRIALING and self.usable_method(sub.user_id, sub.payment_method_id) is None:
            raise InvalidInput("set a payment method first (updateSubscriptionPaymentMethod)")
        if policy == "NEXT_CYCLE" or cycle != sub.cycle:  # a new cycle always starts at the renewal
            return {**quote, "mode": "schedule"}
        if sub.status == TRIALING:
            return {**quote, "mode": "switch"}
        new_price = period_price(list_price, sub.promo, plan.id, sub.period_number)
        net = proration_net(sub.price, new_price, sub.period_end - now, sub.period_end - sub.period_start)
        if net > 0:
            return {**quote, "mode": "charge", "net": net}
        return {**quote, "mode": "refund" if net < 0 else "switch", "net": net, "refunds": self._refund_plan(sub, -net)}

    def apply_plan_change(
        self: Ledger, subscription_id: Any, quote: dict[str, Any], refunds: list[tuple[str, int]], now: datetime
    ) -> Subscription:
        """Record a quoted change ("clear", "schedule", "switch", "refund") with the refunds the
        provider accepted, in one save."""

        def body() -> tuple[Subscription, list[Any]]:
            sub = self.owned_subscription(subscription_id, None)
            changed: list[Any] = [sub, *self._record_refunds(refunds, "plan change", now)]
            if quote["mode"] in ("clear", "schedule"):
                _check_version(sub, quote)
                if quote["mode"] == "clear":
                    sub.clear_change(now)
                else:
                    sub.schedule_change(quote["plan_id"], quote["cycle"], quote["list_price"], now)
            else:
                sub.change_now(quote["plan_id"], quote["list_price"], None, quote["net"], now)
            sub.note_request(quote["key"], quote["fingerprint"], now)
            return sub, changed

        return self.run(body, lock=[_lock(subscription_id)])

    def begin_proration(self: Ledger, subscription_id: Any, quote: dict[str, Any], now: datetime) -> Payment:
        def body() -> tuple[Payment, list[Any]]:
            sub = self.owned_subscription(subscription_id, None)
            order_id = proration_order_id(sub.id, max(sub.period_number, 0), len(sub.payment_ids) + 1, quote["key"])
            earlier = self.payment(payment_id(order_id))
            if earlier is not None:
                return _repeat(earlier, quote["fingerprint"], quote["key"]), []
            _check_version(sub, quote)
            method = self.usable_method(sub.user_id, sub.payment_method_id)
            if method is None:
                raise InvalidInput("set a payment method first (updateSubscriptionPaymentMethod)")
            payment = Payment(
                order_id=order_id, order_name=f"change to {quote['plan_id']} (proration)", user_id=sub.user_id,
                provider=method["provider"], kind="PRORATION", amount=quote["net"], payment_method_id=method["id"],
                subscription_id=str(sub.id), attempt=1,
                purpose={"type": PRORATION, "plan_id": quote["plan_id"], "list_price": quote["list_price"],
                         "key": quote["key"], "fingerprint": quote["fingerprint"]},
                at=now,
            )
            sub.start_charge(str(payment.id), now, period=False)
            return payment, [payment, sub]

        return self.run(body, lock=[_lock(subscription_id)])

    # ------------------------------------------------------------ cancel, resume
    def cancel_quote(
        self: Ledger, user_id: str | None, subscription_id: Any, at_period_end: bool, reason: str | None,
        now: datetime, key: str | None,
    ) -> dict[str, Any]:
        if reason is not None and len(reason) > MAX_REASON:
            raise InvalidInput(f"reason must be at most {MAX_REASON} characters")
        sub = self.owned_subscription(subscription_id, user_id)
        print_ = fingerprint("cancelSubscription", {"sub": str(sub.id), "atPeriodEnd": at_period_end, "reason": reason})
        quote = {"reason": reason, "key": key, "fingerprint": print_, "refunds": [], "version": sub.version}
        if sub.seen_request(key, print_):
            return {**quote, "mode": "replay"}
        sub.check_live()
        sub.check_no_charge_in_flight()
        if at_period_end and sub.status == CANCELING:
            raise Conflict(f"subscription {sub.id} is already canceling at its period end")
        if at_period_end and sub.status not in (PAST_DUE, SUSPENDED):  # nothing paid to wait for there
            return {**quote, "mode": "schedule"}
        return {**quote, "mode": "now", "refunds": self._refund_plan(sub, sub.refund_due(now))}

    def apply_cancel(
        self: Ledger, subscription_id: Any, quote: dict[str, Any], refunds: list[tuple[str, int]], now: datetime
    ) -> Subscription:
        def body() -> tuple[Subscription, list[Any]]:
            sub = self.owned_subscription(subscription_id, None)
            changed = self._record_refunds(refunds, quote["reason"] or "subscription canceled", now)
            if quote["mode"] == "schedule":
                _check_version(sub, quote)
                sub.schedule_cancel(quote["reason"], now)
                changed.append(sub)
            else:
                changed.extend(self._end(sub, now, reason=quote["reason"], refunded=sum(a for _, a in refunds)))
            sub.note_request(quote["key"], quote["fingerprint"], now)
            return sub, changed

        return self.run(body, lock=[_lock(subscription_id)])

    def resume_subscription(self: Ledger, user_id: str | None, subscription_id: Any, now: datetime) -> Subscription:
        def body() -> tuple[Subscription, list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            sub.resume(now)
            return sub, [sub]

        return self.run(body, lock=[_lock(subscription_id)])

    # ------------------------------------------------------------ payment method, usage
    def set_subscription_method(
        self: Ledger, user_id: str | None, subscription_id: Any, method_id: str, now: datetime
    ) -> tuple[Subscription, bool]:
        """Set the method; answers (subscription, True) when it must be charged at once
        instead (PAST_DUE, SUSPENDED): the method is then kept only if that charge succeeds."""

        def body() -> tuple[tuple[Subscription, bool], list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            customer = self.customer(sub.user_id)
            if customer is None:
                raise NotFound(f"payment method {method_id} not found")
            customer.method(method_id)
            sub.check_live()
            if sub.status in (PAST_DUE, SUSPENDED):
                return (sub, True), []
            sub.set_payment_method(method_id, now)
            return (sub, False), [sub]

        return self.run(body, lock=[_lock(subscription_id)])

    def record_usage(
        self: Ledger, user_id: str | None, subscription_id: Any, service: str, amount: int, now: datetime,
        *, actor: str, key: str | None = None,
    ) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidInput(f"amount must be a positive integer, got {amount!r}")
        if not self.catalog.known_service(service):
            raise InvalidInput(f"unknown service {service!r}")

        def body() -> tuple[dict[str, Any], list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            plan = self.plan_of(sub)
            sub.record_usage(service, amount, plan.limit_for(service) if plan else 0, now, self.tz)
            return usage_entry(sub, plan, service, now, self.tz), [sub]

        request = {"subscriptionId": str(subscription_id), "service": service, "amount": amount}
        return self.run(
            body, lock=[_lock(subscription_id)], idempotency=Idempotency(actor, "recordUsage", key, request, now),
            replay=lambda stored: stored, encode=lambda usage: usage,
        )

    # ------------------------------------------------------------ refunds
    def _refund_plan(self: Ledger, sub: Subscription, amount: int) -> list[tuple[str, int]]:
        """Spread a refund over the current period's payments, oldest first."""
        if amount <= 0:
            return []
        payments = [self.payment(pid) for pid in sub.period_payments]
        return split_refund(amount, [(str(p.id), p.refundable) for p in payments if p is not None])

    def _record_refunds(self: Ledger, refunds: list[tuple[str, int]], reason: str, now: datetime) -> list[Any]:
        recorded = []
        for pid, amount in refunds:
            payment = self.payment(pid)
            if payment is None:
                raise NotFound(f"payment {pid} not found")
            payment.refund(amount, reason, now)
            recorded.append(payment)
        return recorded


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


def _repeat(earlier: Subscription | Payment, request_print: str, key: str | None) -> Any:
    """A repeated request (same idempotency key) answers what the first one did."""
    recorded = earlier.request_prints.get("subscribe") if isinstance(earlier, Subscription) else earlier.purpose.get("fingerprint")
    if recorded is not None and recorded != request_print:
        raise IdempotencyKeyReused(f"idempotency key {key!r} was already used for a different request")
    if isinstance(earlier, Payment) and earlier.status == FAILED:
        raise PaymentFailed(earlier.failure_code or "OTHER", str(earlier.id), earlier.failure_message or "")
    return earlier


def _check_version(sub: Subscription, quote: dict[str, Any]) -> None:
    if sub.version != quote["version"]:
        raise Conflict(f"subscription {sub.id} changed meanwhile; try again")


def _lock(subscription_id: Any) -> Any:
    try:
        return uuid.UUID(str(subscription_id))
    except ValueError:
        return str(subscription_id)
