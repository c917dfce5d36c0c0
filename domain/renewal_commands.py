"""The ledger halves of charging subscriptions, and the commands the daily runs issue
(SPEC §3, §6): renew or charge what is due, retry, end trials, finish cancellations,
remind.

A charge is recorded here as a PENDING Payment together with the subscription's
`ChargeStarted` in one save, before any gateway call (`domain/subscription_billing.py`
makes the call); `settle_subscription_payment` records the outcome on both, again
in one save. Two workers racing to charge the same period both build the same
payment id (the order id is deterministic): one save wins, the other conflicts,
reloads, sees the charge in flight and stops.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.errors import NotFound
from domain.ids import customer_id
from domain.payments.payment import FAILED, SUCCEEDED, Payment
from domain.payments.book import PurposeHandler
from domain.ports import DeclineCode
from domain.promo import PromoCode, promo_id
from domain.subscription import CANCELING, PAST_DUE, SUSPENDED, TRIALING, Subscription
from domain.subscription_rules import period_order_id

if TYPE_CHECKING:
    from domain.ledger import Ledger

#: Kinds of payment a subscription makes, as `Payment.purpose["type"]`.
START, PERIOD, PRORATION = "subscription_start", "subscription_period", "proration"
PAYMENT_PURPOSES = (START, PERIOD, PRORATION)


class RenewalCommands:
    ledger: Ledger
    def usable_method(self, user_id: str, method_id: str | None) -> dict[str, Any] | None:
        customer = self.ledger.customer(user_id)
        method = customer.payment_methods.get(method_id) if customer and method_id else None
        return method if method and method["active"] else None

    # ------------------------------------------------------------ charging a period
    def begin_period_charge(
        self, subscription_id: Any, now: datetime, *, method_id: str | None = None
    ) -> tuple[str, Payment | None]:
        """Start paying the subscription's due period. Scheduled (no `method_id`): only when
        due, and a failure counts for dunning. With `method_id` (the user gave a new payment
        method to a PAST_DUE or SUSPENDED subscription): at once, with that method.

        Answers (outcome, payment): "charge" with a PENDING payment to send, or one of
        "skipped", "in_flight", "expired", "renewed" (free), "failed" (not sent) with None.
        """
        scheduled = method_id is None

        def body() -> tuple[tuple[str, Payment | None], list[Any]]:
            sub = self.ledger.subscription(subscription_id)
            if sub is None:
                raise NotFound(f"subscription {subscription_id} not found")
            if scheduled and not sub.is_due(now, self.ledger.tz):
                return ("skipped", None), []
            if not scheduled and sub.status not in (PAST_DUE, SUSPENDED):
                return ("skipped", None), []  # paid meanwhile (a retry won): nothing is owed now
            if sub.pending_payment_id is not None:
                if not scheduled:
                    sub.check_no_charge_in_flight()
                return ("in_flight", None), []
            method = self.usable_method(sub.user_id, method_id or sub.payment_method_id)
            if not scheduled and method is None:
                raise NotFound(f"payment method {method_id} not found")
            if scheduled and sub.status == TRIALING and method is None:
                return ("expired", None), self._end(sub, now, expire=True)
            restart = sub.status == SUSPENDED
            number = sub.period_number + 1 if restart else sub.due_number
            terms = sub.next_terms(number)
            if terms["amount"] == 0:
                sub.pay_period(None, number, restart, terms, method_id, now, self.ledger.tz)
                return ("renewed", None), [sub]
            if method is None:
                # No method left to charge: a failed attempt on the same dates, nothing sent.
                sub.fail_charge(None, DeclineCode.INVALID_BILLING_KEY.value, scheduled, now, self.ledger.tz)
                return ("failed", None), [sub]
            # A hard-declined method is still recorded as a payment here; `domain/payments`
            # fails it without sending it (SPEC §5), and that counts as the attempt.
            attempt = sub.attempts + 1
            payment = Payment(
                order_id=period_order_id(sub.id, number, attempt),
                order_name=f"{terms['plan_id']} {terms['cycle'].lower()} subscription",
                user_id=sub.user_id,
                provider=method["provider"],
                kind="SUBSCRIPTION",
                amount=terms["amount"],
                payment_method_id=method["id"],
                subscription_id=str(sub.id),
                attempt=attempt,
                purpose={"type": PERIOD, "number": number, "restart": restart, "scheduled": scheduled, **terms},
                at=now,
            )
            sub.start_charge(str(payment.id), now)
            return ("charge", payment), [payment, sub]

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    def settle_subscription_payment(self, payment: Payment, now: datetime) -> list[Any]:
        """The subscription side of a settled payment (called inside `PaymentBook.settle_charge`'s
        save): the aggregates it changed, to be saved with the payment."""
        purpose = payment.purpose
        kind = purpose.get("type")
        if kind == START:
            return self._settle_start(payment, now)
        sub = self.ledger.subscription(payment.subscription_id)
        if sub is None:
            return []
        if payment.status == FAILED:
            scheduled = bool(purpose.get("scheduled")) and kind == PERIOD
            sub.fail_charge(str(payment.id), payment.failure_code or "OTHER", scheduled, now, self.ledger.tz)
        elif payment.status == SUCCEEDED and kind == PERIOD:
            method = None if purpose.get("scheduled") else payment.payment_method_id
            sub.pay_period(str(payment.id), purpose["number"], purpose["restart"], purpose, method, now, self.ledger.tz)
        elif payment.status == SUCCEEDED and kind == PRORATION:
            sub.change_now(purpose["plan_id"], purpose["list_price"], str(payment.id), payment.amount, now)
        return [sub]

    def _settle_start(self, payment: Payment, now: datetime) -> list[Any]:
        """The first charge of a subscription without a trial: it exists only once paid
        (SPEC §3: a failed first charge creates no subscription)."""
        purpose = payment.purpose
        customer = self.ledger.customer_or_new(payment.user_id, now)
        promo = self.ledger.load(PromoCode, promo_id(purpose["promo"]["code"])) if purpose.get("promo") else None
        if payment.status == FAILED:
            customer.close_subscription(payment.subscription_id, now)
            if promo is not None:
                promo.release(payment.subscription_id, now)
            return [a for a in (customer, promo) if a is not None]
        sub = Subscription.start(
            subscription_id=payment.subscription_id, user_id=payment.user_id, plan_id=purpose["plan_id"],
            cycle=purpose["cycle"], list_price=purpose["list_price"], promo=purpose.get("promo"),
            payment_method_id=payment.payment_method_id, trial_days=0, now=payment.created_at, tz=self.ledger.tz,
            payment_id=str(payment.id),
        )
        return [sub]

    def subscription_handler(self) -> PurposeHandler:
        """What money means for subscriptions: a settled charge pays (or fails) a period,
        starts one, or applies a plan change. A refund reserves nothing beyond its amount."""
        return PurposeHandler(settle=self.settle_subscription_payment, locks=self.subscription_locks)

    def subscription_locks(self, payment: Payment) -> list[Any]:
        if payment.subscription_id is None:
            return []
        return [lock_key(payment.subscription_id), customer_id(payment.user_id)]

    # ------------------------------------------------------------ endings and reminders
    def finish_cancellation(self, subscription_id: Any, now: datetime) -> bool:
        """CANCELING → CANCELED at the first daily run on or after the period's end."""

        def body() -> tuple[bool, list[Any]]:
            sub = self.ledger.subscription(subscription_id)
            if sub is None or sub.status != CANCELING or now < sub.period_end:
                return False, []
            return True, self._end(sub, now)

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    def expire_trial(self, subscription_id: Any, now: datetime) -> bool:
        """A trial whose end is due and that has no usable payment method → EXPIRED."""

        def body() -> tuple[bool, list[Any]]:
            sub = self.ledger.subscription(subscription_id)
            if sub is None or sub.status != TRIALING or not sub.is_due(now, self.ledger.tz):
                return False, []
            if self.usable_method(sub.user_id, sub.payment_method_id) is not None:
                return False, []
            return True, self._end(sub, now, expire=True)

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    def remind_subscription(self, subscription_id: Any, now: datetime) -> bool:
        def body() -> tuple[bool, list[Any]]:
            sub = self.ledger.subscription(subscription_id)
            if sub is None or not sub.remind(now, self.ledger.tz):
                return False, []
            return True, [sub]

        return self.ledger.run(body, lock=[lock_key(subscription_id)])

    def _end(self, sub: Subscription, now: datetime, *, expire: bool = False, reason: str | None = None,
             refunded: int = 0) -> list[Any]:
        """CANCELED or EXPIRED, and the user is free to subscribe again (same save)."""
        if expire:
            sub.expire(now)
        else:
            sub.cancel(reason, refunded, now)
        customer = self.ledger.customer_or_new(sub.user_id, now)
        customer.close_subscription(str(sub.id), now)
        return [sub, customer]


def lock_key(value: Any) -> Any:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        return value
