"""The ledger side of money: each step of a movement in one transaction.

`PaymentBook` is handed the ledger (loading, the conflict-retry loop, locks,
idempotency records) and, per payment purpose (`Payment.purpose["type"]`), a
`PurposeHandler` saying what settling a charge means for the area that asked for
it (a wallet lot, a subscription period) and what a refund reserves and releases
(a points refund takes the lot's points back; a refused one returns them).
Payments know nothing of wallets or subscriptions beyond these handlers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidInput, NotFound
from domain.idempotency import Idempotency
from domain.ids import customer_id
from domain.payments.payment import PAID, PENDING, Payment, Refund, RefundStatus
from domain.payments.refunds import LookupVerdict, RefundTicket, Reservation, refund_verdict
from domain.ports import HARD_DECLINES, ChargeResult, ChargeStatus, RefundResult, RefundStatus as Answer

if TYPE_CHECKING:
    from domain.ledger import Ledger

MAX_REASON = 500
#: The reason of a refund the provider made without the ledger asking (docs/payments.md).
PROVIDER_REFUND_REASON = "refunded at the provider, not requested through subledger"


def _no_locks(payment: Payment) -> list[Any]:
    return []


def _nothing(*_: Any) -> list[Any]:
    return []


@dataclass(frozen=True)
class PurposeHandler:
    #: The aggregates a settled charge changes (saved with the payment).
    settle: Callable[[Payment, datetime], list[Any]] = _nothing
    #: In-process locks of those aggregates.
    locks: Callable[[Payment], list[Any]] = _no_locks
    #: What a refund of `amount` (None: as much as may be) reserves, decided in its transaction.
    reserve: Callable[[Payment, int | None, datetime], Reservation] | None = None
    #: The aggregates a refused refund gives its reservation back to.
    release: Callable[[Payment, Refund, datetime], list[Any]] = _nothing


@dataclass
class PaymentBook:
    ledger: Ledger
    handlers: dict[str, PurposeHandler] = field(default_factory=dict)

    def handler(self, payment: Payment) -> PurposeHandler:
        return self.handlers.get(payment.purpose.get("type", ""), PurposeHandler())

    def load(self, pay_id: Any) -> Payment:
        payment = self.ledger.payment(pay_id)
        if payment is None:
            raise NotFound(f"payment {pay_id} not found")
        return payment

    def _locks(self, payment: Payment) -> list[Any]:
        return [payment.id, customer_id(payment.user_id), *self.handler(payment).locks(payment)]

    # ------------------------------------------------------------ charges
    def settle_charge(
        self, pay_id: Any, result: ChargeResult, now: datetime, *, pending: Payment | None = None
    ) -> Payment:
        """Record a terminal answer for a PENDING charge with its effects, in one save.
        An UNKNOWN answer records nothing (the payment stays PENDING for the settle job);
        an already settled payment is left alone (a racing settler won). A hard decline
        is remembered on the payment method in the same save.

        `pending`: a copy of this payment the caller loaded PENDING and has not changed
        (the sender's, read just before the request). The first attempt decides on it rather
        than loading the payment again; that attempt always saves the payment, so if anyone
        settled it since, the save conflicts on its version and the retry decides on a fresh
        load. Its locks come from it too (a payment's user and purpose never change)."""
        if result.status == ChargeStatus.UNKNOWN:
            return self.load(pay_id)
        assert pending is None or (pending.status == PENDING and str(pending.id) == str(pay_id))
        first = [pending] if pending is not None else []

        def body() -> tuple[Payment, list[Any]]:
            payment = first.pop() if first else self.load(pay_id)
            if payment.status != PENDING:
                return payment, []
            changed: list[Any] = [payment]
            if result.status == ChargeStatus.APPROVED:
                payment.succeed(result.payment_key or "", result.approved_at or now, now, result.receipt_url)
            else:
                code = result.decline_code.value if result.decline_code else "OTHER"
                payment.fail(code, result.provider_code, result.message, now)
                if result.decline_code in HARD_DECLINES:
                    customer = self.ledger.customer(payment.user_id)
                    if customer is not None and customer.remember_hard_decline(payment.payment_method_id, code, now):
                        changed.append(customer)
            changed.extend(self.handler(payment).settle(payment, now))
            return payment, changed

        return self.ledger.run(body, lock=self._locks(pending or self.load(pay_id)))

    # ------------------------------------------------------------ refunds
    def reserve_refund(self, payment: Payment, amount: int | None, reason: str, now: datetime) -> tuple[Refund, list[Any]]:
        """Inside another command's transaction: decide the refund's amount, reserve what it
        consumes and record it PENDING. Answers the refund and the aggregates to save."""
        reason = check_reason(reason)
        reserve = self.handler(payment).reserve
        reservation = reserve(payment, amount, now) if reserve else Reservation()
        if amount is None:
            amount = payment.refundable if reservation.limit is None else min(reservation.limit, payment.refundable)
        refund = payment.request_refund(
            amount, reason, now, points=reservation.points, lot_id=reservation.lot_id, limit=reservation.limit
        )
        return refund, [payment, *reservation.aggregates]

    def request_refund(
        self, pay_id: Any, amount: int | None, reason: str, now: datetime, *, actor: str, key: str | None
    ) -> RefundTicket:
        """refundPayment's ledger half: the refund recorded PENDING (with what it takes back)
        under the caller's idempotency key, whose fingerprint names the payment."""
        payment = self.load(pay_id)

        def body() -> tuple[RefundTicket, list[Any]]:
            refund, changed = self.reserve_refund(self.load(pay_id), amount, reason, now)
            return RefundTicket(str(payment.id), refund.id), changed

        request = {"paymentId": str(payment.id), "amount": amount, "reason": reason}
        return self.ledger.run(
            body, lock=self._locks(payment), idempotency=Idempotency(actor, "refundPayment", key, request, now),
            replay=RefundTicket.decode, encode=RefundTicket.encode,
        )

    def settle_refund(self, pay_id: Any, refund_id: str, result: RefundResult, now: datetime) -> Payment:
        """Record the provider's definite answer to a refund: DONE settles it, REFUSED
        releases what it reserved. UNKNOWN records nothing."""
        if result.status == Answer.UNKNOWN:
            return self.load(pay_id)
        return self._settle_refund(pay_id, refund_id, result.status == Answer.DONE, now, result.provider_code, result.message)

    def settle_refund_from_lookup(self, pay_id: Any, refund_id: str, cancels: tuple[int, ...], now: datetime) -> LookupVerdict:
        """Settle a refund whose answer was lost by the provider's record of cancellations.
        DONE settles it; ABSENT and DISAGREES leave it PENDING (the caller decides)."""
        payment = self.load(pay_id)
        status = payment.refund(refund_id).status
        if status != RefundStatus.PENDING:
            return LookupVerdict.DONE if status == RefundStatus.SUCCEEDED else LookupVerdict.ABSENT
        verdict = refund_verdict(payment, cancels)
        if verdict == LookupVerdict.DONE:
            self._settle_refund(pay_id, refund_id, True, now, None, None)
        return verdict

    def record_provider_refund(self, pay_id: Any, seen_version: int, cancels: tuple[int, ...], now: datetime) -> int:
        """Record what the provider gave back beyond the ledger's refunds (a cancel made in its
        dashboard) as one refund; answers its amount, 0 when nothing was recorded.

        `cancels` must come from a lookup made after the payment was read at `seen_version`
        with no refund in flight: then every refund the ledger settled shows among them, and
        their total minus `refundedAmount` is exactly what nobody here asked for. If the
        payment changed since (another refund, a racing notice), nothing is recorded; the
        caller looks again. A total below the ledger's, or above what was paid, is a
        disagreement for reconciliation, never recorded."""

        def body() -> tuple[int, list[Any]]:
            payment = self.load(pay_id)
            beyond = sum(cancels) - payment.refunded_amount
            if payment.version != seen_version or payment.pending_refund is not None or payment.status not in PAID:
                return 0, []
            if beyond <= 0 or beyond > payment.refundable:
                return 0, []
            payment.record_provider_refund(beyond, PROVIDER_REFUND_REASON, now)
            return beyond, [payment]

        return self.ledger.run(body, lock=self._locks(self.load(pay_id)))

    def _settle_refund(self, pay_id: Any, refund_id: str, succeeded: bool, now: datetime, code: str | None,
                       message: str | None) -> Payment:
        def body() -> tuple[Payment, list[Any]]:
            payment = self.load(pay_id)
            refund = payment.refund(refund_id)
            if not payment.settle_refund(refund_id, succeeded, now, code, message):
                return payment, []
            released = [] if succeeded else self.handler(payment).release(payment, refund, now)
            return payment, [payment, *released]

        return self.ledger.run(body, lock=self._locks(self.load(pay_id)))


def check_reason(reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise InvalidInput("reason must not be empty")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason must be at most {MAX_REASON} characters")
    return reason.strip()


__all__ = ["PaymentBook", "PurposeHandler", "check_reason"]
