"""Plan changes and cancellations (SPEC §3): the ledger halves of flows that may move
money the other way too, as quotes (decide and validate, nothing saved) and apply
steps (saved in one transaction with the refunds or the proration payment).

`domain/subscription_billing.py` awaits the gateway between a quote and its apply
step; a quote carries the subscription's version, so an apply without money
movement refuses to act on a subscription that changed meanwhile.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound, PaymentFailed
from domain.idempotency import fingerprint
from domain.ids import payment_id
from domain.payment import FAILED, Payment
from domain.periods import proration_net
from domain.renewal_commands import PRORATION, lock_key
from domain.subscription import CANCELING, PAST_DUE, SUSPENDED, TRIALING, Subscription
from domain.subscription_rules import period_price, proration_order_id, split_refund

if TYPE_CHECKING:
    from domain.ledger import Ledger

MAX_REASON = 500


class SubscriptionChanges:
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

        return self.run(body, lock=[lock_key(subscription_id)])

    def begin_proration(self: Ledger, subscription_id: Any, quote: dict[str, Any], now: datetime) -> Payment:
        def body() -> tuple[Payment, list[Any]]:
            sub = self.owned_subscription(subscription_id, None)
            order_id = proration_order_id(sub.id, max(sub.period_number, 0), len(sub.payment_ids) + 1, quote["key"])
            earlier = self.payment(payment_id(order_id))
            if earlier is not None:
                return answer_repeat(earlier, quote["fingerprint"], quote["key"]), []
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

        return self.run(body, lock=[lock_key(subscription_id)])

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

        return self.run(body, lock=[lock_key(subscription_id)])

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


def answer_repeat(earlier: Subscription | Payment, request_print: str, key: str | None) -> Any:
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
