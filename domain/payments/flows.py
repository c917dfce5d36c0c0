"""Use cases that move money: they await a gateway between ledger commands.

The ledger is synchronous (eventsourcing), so every ledger step goes through
`run_sync` (a thread pool sized to the database pool). Every movement follows
the same three steps (docs/payments.md): recorded PENDING under a deterministic
provider key (`PaymentBook`) → the gateway called with that key → settled from
the answer. An answer that was lost is looked up at the gateway before anything
else; one that stays unknown leaves the movement PENDING for the settle job.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from domain.errors import Conflict, InvalidInput, PaymentFailed
from domain.ledger import Ledger
from domain.payments.payment import FAILED, PENDING, Payment, RefundStatus
from domain.payments.refunds import LookupVerdict, RefundTicket
from domain.ports import (
    ChargeResult, ChargeStatus, DeclineCode, GatewayError, PaymentGateway, RefundStatus as Answer, lookup_charge,
    Redirect, RedirectRegistration,
)

RunSync = Callable[..., Awaitable[Any]]
#: Longest return URL a registration accepts (KakaoPay: 255).
MAX_RETURN_URL = 255


class Billing:
    def __init__(self, ledger: Ledger, gateways: Mapping[str, PaymentGateway], run_sync: RunSync) -> None:
        self.ledger = ledger
        self.book = ledger.payments
        self.gateways = dict(gateways)
        self.run_sync = run_sync

    def gateway(self, provider: str) -> PaymentGateway:
        gateway = self.gateways.get(provider)
        if gateway is None:
            enabled = ", ".join(sorted(self.gateways)) or "none"
            raise InvalidInput(f"payment provider {provider} is not enabled (enabled: {enabled})")
        return gateway

    # ------------------------------------------------------------ payment methods
    async def begin_registration(
        self, provider: str, customer_key: str, approval_url: str, cancel_url: str, fail_url: str
    ) -> Redirect:
        """The approval pages of a provider whose payer approves regular payments on its own
        pages (KakaoPay); `registerPaymentMethod` then completes it with their token."""
        gateway = self.gateway(provider)
        if not isinstance(gateway, RedirectRegistration):
            raise InvalidInput(f"{provider} needs no redirect: registerPaymentMethod takes its authKey directly")
        if not customer_key.strip():
            raise InvalidInput("customerKey must not be empty")
        for url in (approval_url, cancel_url, fail_url):
            if not url.startswith(("https://", "http://")) or len(url) > MAX_RETURN_URL:
                raise InvalidInput(f"return URLs must be http(s) URLs of at most {MAX_RETURN_URL} characters")
        try:
            return await gateway.begin_registration(customer_key, approval_url, cancel_url, fail_url)
        except GatewayError as error:
            raise InvalidInput(f"the provider refused the registration: {error.message}", providerCode=error.provider_code)

    async def register_payment_method(
        self, user_id: str, provider: str, auth_key: str, customer_key: str, now: datetime,
        registration_id: str | None = None,
    ) -> dict[str, Any]:
        if not auth_key.strip() or not customer_key.strip():
            raise InvalidInput("authKey and customerKey must not be empty")
        gateway = self.gateway(provider)
        redirected = isinstance(gateway, RedirectRegistration)
        if redirected != bool(registration_id):
            raise InvalidInput(
                f"{provider} registers through beginPaymentMethodRegistration: pass its registrationId" if redirected
                else f"{provider} takes no registrationId"
            )
        try:
            if registration_id and isinstance(gateway, RedirectRegistration):
                issued = await gateway.complete_registration(registration_id, auth_key, customer_key)
            else:
                issued = await gateway.issue_billing_key(auth_key, customer_key)
        except GatewayError as error:
            raise InvalidInput(f"the provider refused the authKey: {error.message}", providerCode=error.provider_code)
        return await self.run_sync(
            self.ledger.customers.add_payment_method, user_id, provider, issued.billing_key, customer_key, issued.card_masked, now
        )

    async def set_sandbox_outcome(self, user_id: str, method_id: str, outcome: str) -> dict[str, Any]:
        method = await self.run_sync(self.ledger.customers.payment_method, user_id, method_id)
        if method["billing_key"] is None:
            raise Conflict("the payment method's billing key was erased with the user's data")
        await self.gateway(method["provider"]).set_sandbox_outcome(method["billing_key"], outcome)
        return method

    # ------------------------------------------------------------ charges
    async def purchase_points(
        self, user_id: str, package_id: str, method_id: str, now: datetime, idempotency_key: str | None
    ) -> Payment:
        payment = await self.run_sync(
            self.ledger.purchases.begin_points_purchase, user_id, package_id, method_id, now, idempotency_key
        )
        if payment.status == PENDING:
            payment = await self.charge(payment, now)
        if payment.status == FAILED:
            raise PaymentFailed(payment.failure_code or "OTHER", str(payment.id), payment.failure_message or "")
        return payment

    async def charge(self, payment: Payment, now: datetime) -> Payment:
        """Send a PENDING payment to its provider and settle it from the answer. Safe to
        repeat: the order id is the Idempotency-Key, so the provider charges it at most once.
        A method the provider refused for good (a hard decline) is not sent again, nor one
        whose billing key was erased with the user's data (declined INVALID_BILLING_KEY)."""
        # One trip to the ledger's threads for both reads the send depends on.
        method, current = await self.run_sync(self._before_send, payment)
        if method.get("hard_decline"):
            result = ChargeResult(
                ChargeStatus.DECLINED, payment.order_id, decline_code=DeclineCode(method["hard_decline"]),
                message="not sent: the provider refused this payment method for good earlier",
            )
        elif method["billing_key"] is None:
            # Erased with the user's data (eraseUserData, SPEC §7): nothing left to charge with.
            result = ChargeResult(
                ChargeStatus.DECLINED, payment.order_id, decline_code=DeclineCode.INVALID_BILLING_KEY,
                message="not sent: the payment method's billing key was erased with the user's data",
            )
        else:
            # A settler in another process (the stale-payment run) may have looked this order
            # up and settled it while it waited here: once settled it is never sent, or the
            # provider would take money for a payment the ledger calls FAILED (found by the soak).
            if current.status != PENDING:
                return current
            result = await self.gateway(payment.provider).charge(
                method["billing_key"], method["customer_key"], payment.amount, payment.order_id, payment.order_name
            )
            if result.status == ChargeStatus.UNKNOWN:
                result = await self.look_up(payment) or result
        pending = current if current.status == PENDING else None
        return await self.run_sync(self.book.settle_charge, payment.id, result, now, pending=pending)

    def _before_send(self, payment: Payment) -> tuple[dict[str, Any], Payment]:
        """The payment method to charge with, and the payment as the ledger holds it now."""
        method = self.ledger.customers.payment_method(payment.user_id, payment.payment_method_id)
        return method, self.book.load(payment.id)

    async def look_up(self, payment: Payment) -> ChargeResult | None:
        """Ask the provider what became of an order whose outcome we did not see.
        Not found means it never charged: FAILED with NETWORK_ERROR (SPEC §3). None when
        the provider cannot be asked; an order still in progress answers UNKNOWN."""
        try:
            found = await lookup_charge(self.gateway(payment.provider), payment.order_id, payment.payment_key)
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
        """A PENDING payment left by a crash or an unknown outcome: look it up, never re-charge
        blindly. A refund left PENDING is finished the same way (`settle_stale_refund`)."""
        if payment.status == PENDING:
            result = await self.look_up(payment)
            if result is not None:
                payment = await self.run_sync(self.book.settle_charge, payment.id, result, now)
        refund = payment.pending_refund
        if refund is not None:
            payment = await self.settle_stale_refund(RefundTicket(str(payment.id), refund.id), now)
        return payment

    async def settle_from_provider(self, pay_id: str, payment_key: str, now: datetime) -> Payment:
        """A person settles a PENDING charge that cannot be looked up by its order id (KakaoPay,
        whose tid was in a lost answer): they give the provider's key of it, found in the
        provider's own records by the order id. It is looked up there, must be this payment's
        order, and the payment is settled from what the provider holds; nothing is charged."""
        payment = await self.run_sync(self.book.load, pay_id)
        if payment.status != PENDING:
            raise Conflict(f"payment {pay_id} is {payment.status.value}, not PENDING: nothing to settle")
        if not payment_key.strip():
            raise InvalidInput("providerPaymentKey must not be empty")
        try:
            found = await lookup_charge(self.gateway(payment.provider), payment.order_id, payment_key)
        except GatewayError as error:
            raise InvalidInput(f"the provider did not confirm it: {error.message}", providerCode=error.provider_code)
        if found is None or found.order_id != payment.order_id:
            raise InvalidInput("the provider holds no payment of this order under that key")
        if found.status == ChargeStatus.UNKNOWN:
            raise Conflict(f"the order is still in progress at the provider ({found.gateway_status})")
        return await self.run_sync(self.book.settle_charge, payment.id, found, now)

    # ------------------------------------------------------------ refunds
    async def refund_payment(
        self, pay_id: str, amount: int | None, reason: str, now: datetime, *, actor: str, idempotency_key: str | None
    ) -> Payment:
        """refundPayment: recorded (with what it takes back) → sent → settled. A refusal
        answers CONFLICT after releasing the reservation; an unknown outcome answers the
        payment with the refund still PENDING (the settle job finishes it)."""
        ticket = await self.run_sync(
            self.book.request_refund, pay_id, amount, reason, now, actor=actor, key=idempotency_key
        )
        payment = await self.send_refund(ticket, now)
        refund = payment.refund(ticket.refund_id)
        if refund.status == RefundStatus.FAILED:
            raise Conflict(f"the provider refused the refund: {refund.failure_code} {refund.failure_message}")
        return payment

    async def send_refunds(self, tickets: list[RefundTicket], now: datetime) -> None:
        for ticket in tickets:
            await self.send_refund(ticket, now)

    async def send_refund(self, ticket: RefundTicket, now: datetime) -> Payment:
        """Send a recorded refund under its own key and settle it; a lost answer is looked
        up in the payment's cancellations at the provider. Safe to repeat."""
        payment = await self.run_sync(self.book.load, ticket.payment_id)
        refund = payment.refund(ticket.refund_id)
        if refund.status != RefundStatus.PENDING:
            return payment
        result = await self.gateway(payment.provider).refund(payment.payment_key or "", refund.amount, refund.reason, refund.key)
        if result.status == Answer.UNKNOWN:
            await self._settle_refund_by_lookup(payment, ticket, now)
            return await self.run_sync(self.book.load, ticket.payment_id)
        return await self.run_sync(self.book.settle_refund, payment.id, refund.id, result, now)

    async def settle_stale_refund(self, ticket: RefundTicket, now: datetime) -> Payment:
        """A refund left PENDING: the provider's cancellations say whether it was made; if
        they show it was not, it is sent again under the same key (the provider makes it
        at most once), and settled from that answer."""
        payment = await self.run_sync(self.book.load, ticket.payment_id)
        verdict = await self._settle_refund_by_lookup(payment, ticket, now)
        if verdict == LookupVerdict.ABSENT:
            return await self.send_refund(ticket, now)
        return await self.run_sync(self.book.load, ticket.payment_id)

    async def _settle_refund_by_lookup(self, payment: Payment, ticket: RefundTicket, now: datetime) -> LookupVerdict | None:
        try:
            found = await lookup_charge(self.gateway(payment.provider), payment.order_id, payment.payment_key)
        except GatewayError:
            return None
        if found is None:
            return LookupVerdict.DISAGREES  # a paid order the provider does not know: reconcile reports it
        return await self.run_sync(self.book.settle_refund_from_lookup, payment.id, ticket.refund_id, found.cancels, now)
