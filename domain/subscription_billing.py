"""Subscription use cases that move money: the ledger records the change and the
money it moves in one transaction (`domain/subscription_changes.py`), then the
payments area sends each movement and settles it (`domain/payments/flows.py`).

Charges: the payment is recorded PENDING with the subscription's `ChargeStarted`
→ sent under its order id (the provider's Idempotency-Key) → settled, which
applies the outcome to the subscription in the same save. Refunds (cancel now, a
downgrade): recorded PENDING with the cancellation or plan change → sent under
their own keys → settled. A crash in between leaves PENDING movements that the
settle job finishes; nothing is ever sent that the ledger has not recorded.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.errors import Conflict, PaymentFailed
from domain.payments.flows import Billing
from domain.payments.payment import FAILED, PENDING, Payment
from domain.subscription import Subscription
from domain.subscription_changes import MoneyToMove


class SubscriptionBilling:
    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        self.ledger = billing.ledger
        self.run_sync = billing.run_sync

    # ------------------------------------------------------------ user operations
    async def subscribe(
        self, user_id: str, plan_id: str, cycle: str, method_id: str | None, promo_code: str | None,
        skip_trial: bool, now: datetime, key: str | None,
    ) -> Subscription:
        started = await self.run_sync(
            self.ledger.subscriptions.begin_subscription, user_id, plan_id, cycle, method_id, promo_code, skip_trial, now, key
        )
        if isinstance(started, Subscription):
            return started
        payment = await self._send(started, now)
        sub = await self.run_sync(self.ledger.subscription, payment.subscription_id)
        if sub is None:
            raise Conflict("the first payment is still being confirmed with the provider; ask again later")
        return sub

    async def change_plan(
        self, user_id: str | None, subscription_id: str, plan_id: str, cycle: str | None, policy: str,
        now: datetime, key: str | None, *, actor: str,
    ) -> Subscription:
        moved = await self.run_sync(
            self.ledger.subscriptions.change_plan, user_id, subscription_id, plan_id, cycle, policy, now, key, actor=actor
        )
        await self._move(moved, now)
        return await self.run_sync(self.ledger.subscriptions.owned_subscription, moved.subscription_id, user_id)

    async def cancel(
        self, user_id: str | None, subscription_id: str, at_period_end: bool, reason: str | None,
        now: datetime, key: str | None, *, actor: str,
    ) -> Subscription:
        moved = await self.run_sync(
            self.ledger.subscriptions.cancel_subscription, user_id, subscription_id, at_period_end, reason, now, key, actor=actor
        )
        await self._move(moved, now)
        return await self.run_sync(self.ledger.subscriptions.owned_subscription, moved.subscription_id, user_id)

    async def update_payment_method(
        self, user_id: str | None, subscription_id: str, method_id: str, now: datetime
    ) -> Subscription:
        """SPEC §3: a PAST_DUE or SUSPENDED subscription is charged at once with the new
        method; success → ACTIVE, failure → PAYMENT_FAILED and the state stays."""
        ledger = self.ledger
        sub, charge_now = await self.run_sync(ledger.subscriptions.set_subscription_method, user_id, subscription_id, method_id, now)
        if not charge_now:
            return sub
        outcome, payment = await self.run_sync(ledger.subscriptions.begin_period_charge, sub.id, now, method_id=method_id)
        if payment is not None:
            await self._send(payment, now)
        elif outcome == "skipped":  # no longer owed (a retry paid it meanwhile): just set the method
            sub, _ = await self.run_sync(ledger.subscriptions.set_subscription_method, user_id, subscription_id, method_id, now)
            return sub
        return await self.run_sync(ledger.subscriptions.owned_subscription, subscription_id, user_id)

    # ------------------------------------------------------------ the daily run
    async def charge_due(self, subscription_id: Any, now: datetime) -> str:
        """Renew, end a trial or retry, if the subscription is due at `now` (else nothing).
        Answers what happened: "succeeded", "failed", "pending", "renewed", "expired",
        "in_flight" or "skipped"."""
        outcome, payment = await self.run_sync(self.ledger.subscriptions.begin_period_charge, subscription_id, now)
        if payment is None:
            return outcome
        settled = await self.billing.charge(payment, now)
        return settled.status.value.lower()

    # ------------------------------------------------------------ gateway steps
    async def _move(self, moved: MoneyToMove, now: datetime) -> None:
        """Send what a recorded change owes: its proration charge, or its refunds."""
        if moved.payment_id is not None:
            payment = await self.run_sync(self.billing.book.load, moved.payment_id)
            await self._send(payment, now)
        await self.billing.send_refunds(moved.refunds, now)

    async def _send(self, payment: Payment, now: datetime) -> Payment:
        """Charge a PENDING payment; a decline answers PAYMENT_FAILED (recorded as FAILED)."""
        if payment.status == PENDING:
            payment = await self.billing.charge(payment, now)
        if payment.status == FAILED:
            raise PaymentFailed(payment.failure_code or "OTHER", str(payment.id), payment.failure_message or "")
        return payment
