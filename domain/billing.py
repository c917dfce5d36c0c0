"""Use cases that move money: they await a gateway between ledger commands.

The ledger is synchronous (eventsourcing), so every ledger call goes through
`run_sync` (a thread pool sized to the database pool). The order of steps is
the exactly-once flow of DESIGN.md: PENDING recorded → gateway called with the
order id as Idempotency-Key → outcome recorded with its effects in one save.
"""
from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from domain.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound, PaymentFailed
from domain.ledger import Ledger
from domain.payment import FAILED, PENDING, Payment
from domain.ports import ChargeResult, ChargeStatus, DeclineCode, GatewayError, PaymentGateway

RunSync = Callable[..., Awaitable[Any]]


class Billing:
    def __init__(self, ledger: Ledger, gateways: Mapping[str, PaymentGateway], run_sync: RunSync) -> None:
        self.ledger = ledger
        self.gateways = dict(gateways)
        self.run_sync = run_sync

    def gateway(self, provider: str) -> PaymentGateway:
        gateway = self.gateways.get(provider)
        if gateway is None:
            enabled = ", ".join(sorted(self.gateways)) or "none"
            raise InvalidInput(f"payment provider {provider} is not enabled (enabled: {enabled})")
        return gateway

    async def register_payment_method(
        self, user_id: str, provider: str, auth_key: str, customer_key: str, now: datetime
    ) -> dict[str, Any]:
        if not auth_key.strip() or not customer_key.strip():
            raise InvalidInput("authKey and customerKey must not be empty")
        gateway = self.gateway(provider)
        try:
            issued = await gateway.issue_billing_key(auth_key, customer_key)
        except GatewayError as error:
            raise InvalidInput(f"the provider refused the authKey: {error.message}", providerCode=error.provider_code)
        return await self.run_sync(
            self.ledger.add_payment_method, user_id, provider, issued.billing_key, customer_key, issued.card_masked, now
        )

    async def set_sandbox_outcome(self, user_id: str, method_id: str, outcome: str) -> dict[str, Any]:
        method = await self.run_sync(self.ledger.payment_method, user_id, method_id)
        await self.gateway(method["provider"]).set_sandbox_outcome(method["billing_key"], outcome)
        return method

    async def purchase_points(
        self, user_id: str, package_id: str, method_id: str, now: datetime, idempotency_key: str | None
    ) -> Payment:
        payment = await self.run_sync(
            self.ledger.begin_points_purchase, user_id, package_id, method_id, now, idempotency_key
        )
        if payment.status == PENDING:
            payment = await self.charge(payment, now)
        if payment.status == FAILED:
            raise PaymentFailed(payment.failure_code or "OTHER", str(payment.id), payment.failure_message or "")
        return payment

    async def charge(self, payment: Payment, now: datetime) -> Payment:
        """Send a PENDING payment to its provider and record the outcome. Safe to repeat:
        the order id is the Idempotency-Key, so the provider charges it at most once."""
        method = await self.run_sync(self.ledger.payment_method, payment.user_id, payment.payment_method_id)
        gateway = self.gateway(payment.provider)
        result = await gateway.charge(
            method["billing_key"], method["customer_key"], payment.amount, payment.order_id, payment.order_name
        )
        if result.status == ChargeStatus.UNKNOWN:
            settled = await self.look_up(payment)
            if settled is None:
                return payment  # still unknown: stays PENDING for the settle job
            result = settled
        return await self.run_sync(self.ledger.settle_payment, payment.id, result, now)

    async def look_up(self, payment: Payment) -> ChargeResult | None:
        """Ask the provider what became of an order whose outcome we did not see.
        Not found means it never charged: FAILED with NETWORK_ERROR (SPEC §3)."""
        try:
            found = await self.gateway(payment.provider).lookup_order(payment.order_id)
        except GatewayError:
            return None
        if found is None:
            return ChargeResult(
                status=ChargeStatus.DECLINED,
                order_id=payment.order_id,
                decline_code=DeclineCode.NETWORK_ERROR,
                message="the provider has no record of the order",
            )
        return found

    async def settle_stale(self, payment: Payment, now: datetime) -> Payment:
        """A PENDING payment left by a crash or an unknown outcome: look it up, never re-charge blindly."""
        result = await self.look_up(payment)
        if result is None:
            return payment
        return await self.run_sync(self.ledger.settle_payment, payment.id, result, now)

    async def refund_payment(
        self, pay_id: str, amount: int | None, reason: str, now: datetime, idempotency_key: str | None
    ) -> Payment:
        if not reason or not reason.strip():
            raise InvalidInput("reason must not be empty")
        payment = await self.run_sync(self.ledger.payment, pay_id)
        if payment is None:
            raise NotFound(f"payment {pay_id} not found")
        request_print = _refund_print(amount, reason)
        for done in payment.refunds:
            if idempotency_key is not None and done.get("key") == idempotency_key:
                if done.get("fingerprint") != request_print:
                    raise IdempotencyKeyReused(f"idempotency key {idempotency_key!r} was used for another refund")
                return payment
        if payment.kind == "POINTS":
            refundable = await self.run_sync(self.ledger.points_refund_quote, payment)
        else:
            refundable = payment.refundable
        if refundable <= 0:
            raise Conflict(f"payment {payment.order_id} ({payment.status}) has nothing left to refund")
        amount = refundable if amount is None else amount
        if amount <= 0 or amount > refundable:
            raise InvalidInput(f"refund amount must be between 1 and {refundable}, got {amount}")
        sequence = idempotency_key and hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        refund_key = f"{payment.order_id}-rf-{sequence or len(payment.refunds) + 1}"
        outcome = await self.gateway(payment.provider).refund(payment.payment_key or "", amount, reason, refund_key)
        if not outcome.ok:
            raise Conflict(f"the provider refused the refund: {outcome.provider_code} {outcome.message}")
        return await self.run_sync(
            self.ledger.record_refund, payment.id, amount, reason, now, idempotency_key, request_print
        )


def _refund_print(amount: int | None, reason: str) -> str:
    return hashlib.sha256(f"{amount}|{reason}".encode()).hexdigest()
