"""Subscription use cases that move money: they await the gateway between ledger
commands (DESIGN.md, Charging exactly once).

Charges: the ledger records the payment PENDING with the subscription's
`ChargeStarted` → `Billing.charge` sends it under its order id (the provider's
Idempotency-Key) and settles it, which applies the outcome to the subscription
in the same save. Refunds: the ledger quotes them (nothing saved) → the
provider refunds under a key derived from the payment and the subscription's
version → the ledger records the refunds with the cancellation or plan change
in one save; a repeat after a crash reuses the key, so the provider refunds once.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.billing import Billing
from domain.errors import Conflict, NotFound, PaymentFailed
from domain.payment import FAILED, PENDING, Payment
from domain.subscription import Subscription


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
            self.ledger.begin_subscription, user_id, plan_id, cycle, method_id, promo_code, skip_trial, now, key
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
        now: datetime, key: str | None,
    ) -> Subscription:
        ledger = self.ledger
        quote = await self.run_sync(ledger.plan_change_quote, user_id, subscription_id, plan_id, cycle, policy, now, key)
        if quote["mode"] == "replay":
            return await self.run_sync(ledger.owned_subscription, subscription_id, user_id)
        if quote["mode"] == "charge":
            payment = await self.run_sync(ledger.begin_proration, subscription_id, quote, now)
            await self._send(payment, now)
            return await self.run_sync(ledger.owned_subscription, subscription_id, user_id)
        refunds = await self._refund(quote["refunds"], "plan change", f"v{quote['version']}")
        return await self.run_sync(ledger.apply_plan_change, subscription_id, quote, refunds, now)

    async def cancel(
        self, user_id: str | None, subscription_id: str, at_period_end: bool, reason: str | None,
        now: datetime, key: str | None,
    ) -> Subscription:
        ledger = self.ledger
        quote = await self.run_sync(ledger.cancel_quote, user_id, subscription_id, at_period_end, reason, now, key)
        if quote["mode"] == "replay":
            return await self.run_sync(ledger.owned_subscription, subscription_id, user_id)
        refunds = await self._refund(quote["refunds"], reason or "subscription canceled", f"v{quote['version']}")
        return await self.run_sync(ledger.apply_cancel, subscription_id, quote, refunds, now)

    async def update_payment_method(
        self, user_id: str | None, subscription_id: str, method_id: str, now: datetime
    ) -> Subscription:
        """SPEC §3: a PAST_DUE or SUSPENDED subscription is charged at once with the new
        method; success → ACTIVE, failure → PAYMENT_FAILED and the state stays."""
        ledger = self.ledger
        sub, charge_now = await self.run_sync(ledger.set_subscription_method, user_id, subscription_id, method_id, now)
        if not charge_now:
            return sub
        outcome, payment = await self.run_sync(ledger.begin_period_charge, sub.id, now, method_id=method_id)
        if payment is not None:
            await self._send(payment, now)
        elif outcome == "skipped":  # no longer owed (a retry paid it meanwhile): just set the method
            sub, _ = await self.run_sync(ledger.set_subscription_method, user_id, subscription_id, method_id, now)
            return sub
        return await self.run_sync(ledger.owned_subscription, subscription_id, user_id)

    # ------------------------------------------------------------ the daily run
    async def charge_due(self, subscription_id: Any, now: datetime) -> str:
        """Renew, end a trial or retry, if the subscription is due at `now` (else nothing).
        Answers what happened: "succeeded", "failed", "pending", "renewed", "expired",
        "in_flight" or "skipped"."""
        outcome, payment = await self.run_sync(self.ledger.begin_period_charge, subscription_id, now)
        if payment is None:
            return outcome
        settled = await self.billing.charge(payment, now)
        return settled.status.lower()

    # ------------------------------------------------------------ gateway steps
    async def _send(self, payment: Payment, now: datetime) -> Payment:
        """Charge a PENDING payment; a decline answers PAYMENT_FAILED (recorded as FAILED)."""
        if payment.status == PENDING:
            payment = await self.billing.charge(payment, now)
        if payment.status == FAILED:
            raise PaymentFailed(payment.failure_code or "OTHER", str(payment.id), payment.failure_message or "")
        return payment

    async def _refund(self, refunds: list[tuple[str, int]], reason: str, tag: str) -> list[tuple[str, int]]:
        done = []
        for pay_id, amount in refunds:
            payment = await self.run_sync(self.ledger.payment, pay_id)
            if payment is None:
                raise NotFound(f"payment {pay_id} not found")
            gateway = self.billing.gateway(payment.provider)
            outcome = await gateway.refund(payment.payment_key or "", amount, reason, f"{payment.order_id}-rf-{tag}")
            if not outcome.ok:
                raise Conflict(f"the provider refused the refund: {outcome.provider_code} {outcome.message}")
            done.append((pay_id, outcome.refunded_amount or amount))
        return done
