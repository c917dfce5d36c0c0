"""Plan changes and cancellations (SPEC §3): each decided and recorded in one
transaction, with the money it moves recorded in the same save — refunds as
PENDING movements (their amounts reserved on the payments), a proration charge
as a PENDING payment. `domain/subscription_billing.py` then sends them to the
gateway and settles them (`domain/payments`); nothing reaches the gateway
before the ledger has recorded it.

`user_id=None` means an ADMIN acting on anyone's subscription. Idempotency keys
are the ledger's one mechanism (`IdempotencyRecord`), scoped to the caller
(`actor`) and the operation, fingerprinted on the whole input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import Conflict, InvalidInput
from domain.idempotency import Idempotency
from domain.payments.book import MAX_REASON
from domain.payments.payment import Payment
from domain.payments.refunds import RefundTicket
from domain.periods import proration_net
from domain.renewal_commands import PRORATION, lock_key
from domain.subscription import CANCELING, PAST_DUE, SUSPENDED, TRIALING, Subscription
from domain.subscription_rules import period_price, proration_order_id, split_refund

if TYPE_CHECKING:
    from domain.ledger import Ledger


@dataclass(frozen=True)
class MoneyToMove:
    """What a recorded change still has to send: refunds, or a proration charge."""

    subscription_id: str
    refunds: list[RefundTicket] = field(default_factory=list)
    payment_id: str | None = None

    def encode(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "refunds": [t.encode() for t in self.refunds],
                "payment_id": self.payment_id}

    @classmethod
    def decode(cls, stored: dict[str, Any]) -> MoneyToMove:
        return cls(stored["subscription_id"], [RefundTicket.decode(t) for t in stored["refunds"]], stored["payment_id"])


class SubscriptionChanges:
    ledger: Ledger
    # ------------------------------------------------------------ change plan
    def change_plan(
        self, user_id: str | None, subscription_id: Any, plan_id: str, cycle: str | None, policy: str,
        now: datetime, key: str | None, *, actor: str,
    ) -> MoneyToMove:
        """SPEC §3: switch now (with a PRORATION charge, or refunds against the period's
        payments), schedule for the next cycle, or clear a scheduled change."""
        plan = self.ledger.catalog.plan(plan_id)
        if not plan.active:
            raise InvalidInput(f"plan {plan_id} is no longer offered")

        def body() -> tuple[MoneyToMove, list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            new_cycle = cycle or sub.cycle
            list_price = plan.price(new_cycle)
            sub.check_changeable()
            sub.check_no_charge_in_flight()
            moved = MoneyToMove(str(sub.id))
            if plan.id == sub.plan_id and new_cycle == sub.cycle:
                if sub.pending_change is None:
                    raise Conflict(f"subscription {sub.id} is already on {plan.id} {new_cycle}")
                sub.clear_change(now)
                return moved, [sub]
            if list_price > 0 and sub.status != TRIALING and self.usable_method(sub.user_id, sub.payment_method_id) is None:
                raise InvalidInput("set a payment method first (updateSubscriptionPaymentMethod)")
            if policy == "NEXT_CYCLE" or new_cycle != sub.cycle:  # a new cycle always starts at the renewal
                sub.schedule_change(plan.id, new_cycle, list_price, now)
                return moved, [sub]
            if sub.status == TRIALING:
                sub.change_now(plan.id, list_price, None, 0, now)
                return moved, [sub]
            new_price = period_price(list_price, sub.promo, plan.id, sub.period_number)
            net = proration_net(sub.price, new_price, sub.period_end - now, sub.period_end - sub.period_start)
            if net > 0:
                payment = self._proration(sub, plan.id, list_price, net, key, now)
                return MoneyToMove(str(sub.id), payment_id=str(payment.id)), [payment, sub]
            tickets, changed, _ = self._reserve_refunds(sub, -net, "plan change", now)
            sub.change_now(plan.id, list_price, None, net, now)
            return MoneyToMove(str(sub.id), refunds=tickets), [sub, *changed]

        request = {"subscriptionId": str(subscription_id), "planId": plan_id, "cycle": cycle, "policy": policy}
        return self.ledger.run(
            body, lock=[lock_key(subscription_id)], idempotency=Idempotency(actor, "changePlan", key, request, now),
            replay=MoneyToMove.decode, encode=MoneyToMove.encode,
        )

    def _proration(self, sub: Subscription, plan_id: str, list_price: int, net: int, key: str | None,
                   now: datetime) -> Payment:
        """The PRORATION payment, PENDING; settling it applies the change (or leaves the plan)."""
        method = self.usable_method(sub.user_id, sub.payment_method_id)
        if method is None:
            raise InvalidInput("set a payment method first (updateSubscriptionPaymentMethod)")
        payment = Payment(
            order_id=proration_order_id(sub.id, max(sub.period_number, 0), len(sub.payment_ids) + 1, key),
            order_name=f"change to {plan_id} (proration)", user_id=sub.user_id, provider=method["provider"],
            kind="PRORATION", amount=net, payment_method_id=method["id"], subscription_id=str(sub.id), attempt=1,
            purpose={"type": PRORATION, "plan_id": plan_id, "list_price": list_price}, at=now,
        )
        sub.start_charge(str(payment.id), now, period=False)
        return payment

    # ------------------------------------------------------------ cancel
    def cancel_subscription(
        self, user_id: str | None, subscription_id: Any, at_period_end: bool, reason: str | None,
        now: datetime, key: str | None, *, actor: str,
    ) -> MoneyToMove:
        """At the period's end (CANCELING), or now (CANCELED) with the unused part of the
        period refunded: the refunds are recorded with the cancellation, then sent."""
        if reason is not None and len(reason) > MAX_REASON:
            raise InvalidInput(f"reason must be at most {MAX_REASON} characters")

        def body() -> tuple[MoneyToMove, list[Any]]:
            sub = self.owned_subscription(subscription_id, user_id)
            sub.check_live()
            sub.check_no_charge_in_flight()
            if at_period_end and sub.status == CANCELING:
                raise Conflict(f"subscription {sub.id} is already canceling at its period end")
            if at_period_end and sub.status not in (PAST_DUE, SUSPENDED):  # nothing paid to wait for there
                sub.schedule_cancel(reason, now)
                return MoneyToMove(str(sub.id)), [sub]
            tickets, changed, refunded = self._reserve_refunds(sub, sub.refund_due(now), reason or "subscription canceled", now)
            return MoneyToMove(str(sub.id), refunds=tickets), [*changed, *self._end(sub, now, reason=reason, refunded=refunded)]

        request = {"subscriptionId": str(subscription_id), "atPeriodEnd": at_period_end, "reason": reason}
        return self.ledger.run(
            body, lock=[lock_key(subscription_id)],
            idempotency=Idempotency(actor, "cancelSubscription", key, request, now),
            replay=MoneyToMove.decode, encode=MoneyToMove.encode,
        )

    # ------------------------------------------------------------ refunds
    def _reserve_refunds(
        self, sub: Subscription, amount: int, reason: str, now: datetime
    ) -> tuple[list[RefundTicket], list[Any], int]:
        """Spread a refund over the current period's payments, oldest first, each recorded
        PENDING on its payment (to be saved with the change that owes it); answers the
        tickets, the aggregates to save and the total reserved."""
        if amount <= 0:
            return [], [], 0
        payments = [p for p in (self.ledger.payment(pid) for pid in sub.period_payments) if p is not None]
        by_id = {str(p.id): p for p in payments}
        tickets, changed, total = [], [], 0
        for pay_id, share in split_refund(amount, [(str(p.id), p.refundable) for p in payments]):
            refund, aggregates = self.ledger.payments.reserve_refund(by_id[pay_id], share, reason, now)
            tickets.append(RefundTicket(pay_id, refund.id))
            changed.extend(aggregates)
            total += share
        return tickets, changed, total
