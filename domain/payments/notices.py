"""Payment notifications from a provider (Toss' webhook): a reason to look, never a source of truth.

A notice names a payment by the provider's key and says what became of it. Nothing in it
is believed: the payment is fetched from the gateway by that key, and the ledger is moved
to what the gateway holds, through the commands the settle run uses
(`PaymentBook.settle_charge`, `settle_refund_from_lookup`) and one for a refund made at the
provider without the ledger asking (`PaymentBook.record_provider_refund`). So a notice can
make the ledger do only what a lookup proves, and only sooner than the daily settle run
would; repeating or reordering notices changes nothing more.

- A PENDING charge the gateway shows settled is settled at once, exactly as the settle run
  settles it from the same lookup: DONE (or PARTIAL_CANCELED) → SUCCEEDED; ABORTED, EXPIRED
  or CANCELED → FAILED. An order charged and then wholly cancelled before the ledger heard
  is therefore FAILED on either path, and reconciliation reports it (CHARGED_NOT_SUCCEEDED)
  for a person to look at: the money came back, and no period or points were given.
- A refund the ledger sent and still waits for is settled when the gateway's cancellations
  show it; nothing is ever sent to the gateway from here.
- Cancellations beyond the ledger's refunds (a cancel in the provider's dashboard) are
  recorded as one refund of their total; it gives money back only, and leaves the points of
  a purchase and the period of a subscription as they are (a person decides about those).
- A notice whose status, order or amount differs from the gateway's record is forged or out
  of date: nothing is done (a newer notice, the settle run, or reconciliation covers it).
- An unknown payment key, or an order the ledger never asked for, changes nothing.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime

from domain.ids import payment_id
from domain.payments.flows import Billing
from domain.payments.payment import PAID, PENDING, Payment
from domain.ports import ChargeResult, ChargeStatus, GatewayError, PaymentGateway

#: Fresh lookups tried for a dashboard refund while racing writers keep changing the payment.
REFUND_ATTEMPTS = 3


class NoticeOutcome(enum.StrEnum):
    CHANGED = "CHANGED"  # the ledger moved to what the gateway holds
    UNCHANGED = "UNCHANGED"  # the ledger already agreed (a repeat, a late notice), or the payment is still moving
    UNKNOWN_PAYMENT = "UNKNOWN_PAYMENT"  # the gateway has no such payment, or the ledger never asked for its order
    MISMATCH = "MISMATCH"  # the notice says what the gateway does not: forged or out of date
    IGNORED = "IGNORED"  # not a payment notice, or one that names no payment
    LOOKUP_FAILED = "LOOKUP_FAILED"  # the gateway could not be asked: the provider should send it again


@dataclass(frozen=True)
class PaymentNotice:
    """What a notification claims; None where it says nothing."""

    payment_key: str
    status: str | None = None
    order_id: str | None = None
    total_amount: int | None = None


@dataclass(frozen=True)
class NoticeResult:
    outcome: NoticeOutcome
    order_id: str | None = None
    gateway_status: str | None = None
    changes: tuple[str, ...] = ()


def contradicts(notice: PaymentNotice, found: ChargeResult) -> bool:
    """The notice says something about the payment that the gateway's record does not."""
    claims = ((notice.status, found.gateway_status), (notice.order_id, found.order_id), (notice.total_amount, found.amount))
    return any(claimed is not None and claimed != held for claimed, held in claims)


class NoticeHandler:
    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        self.book = billing.book
        self.run_sync = billing.run_sync

    async def handle(self, provider: str, notice: PaymentNotice, now: datetime) -> NoticeResult:
        gateway = self.billing.gateways.get(provider)
        if gateway is None:
            return NoticeResult(NoticeOutcome.IGNORED)
        try:
            found = await gateway.lookup_payment(notice.payment_key)
        except GatewayError:
            return NoticeResult(NoticeOutcome.LOOKUP_FAILED, notice.order_id)
        if found is None:
            return NoticeResult(NoticeOutcome.UNKNOWN_PAYMENT)
        known = NoticeResult(NoticeOutcome.UNCHANGED, found.order_id, found.gateway_status)
        if contradicts(notice, found):
            return dataclasses.replace(known, outcome=NoticeOutcome.MISMATCH)
        payment: Payment | None = await self.run_sync(self.billing.ledger.payment, payment_id(found.order_id))
        if payment is None or payment.provider != provider:
            return dataclasses.replace(known, outcome=NoticeOutcome.UNKNOWN_PAYMENT)
        if payment.payment_key is not None and payment.payment_key != found.payment_key:
            return dataclasses.replace(known, outcome=NoticeOutcome.MISMATCH)
        changes = await self._settle(payment, found, now)
        changes += await self._provider_refund(gateway, payment.id, notice.payment_key, found, now)
        if changes:
            return dataclasses.replace(known, outcome=NoticeOutcome.CHANGED, changes=tuple(changes))
        return known

    async def _settle(self, payment: Payment, found: ChargeResult, now: datetime) -> list[str]:
        """The charge, then the ledger's own refund in flight, settled from the gateway's record."""
        changes = []
        if payment.status == PENDING:
            if found.status != ChargeStatus.UNKNOWN:
                settled = await self.run_sync(self.book.settle_charge, payment.id, found, now)
                if settled.version != payment.version:
                    changes.append(f"charge {settled.status.value}")
                payment = settled
        refund = payment.pending_refund
        if refund is not None:
            before = payment.version
            await self.run_sync(self.book.settle_refund_from_lookup, payment.id, refund.id, found.cancels, now)
            if (await self.run_sync(self.book.load, payment.id)).version != before:
                changes.append(f"refund of {refund.amount} settled")
        return changes

    async def _provider_refund(
        self, gateway: PaymentGateway, pay_id: object, payment_key: str, found: ChargeResult, now: datetime
    ) -> list[str]:
        """Cancellations nobody here asked for, recorded as a refund. Each try reads the
        payment, then looks the payment up afresh (the book's rule: see `record_provider_refund`)."""
        for _ in range(REFUND_ATTEMPTS):
            payment = await self.run_sync(self.book.load, pay_id)
            if payment.status not in PAID or payment.pending_refund is not None:
                return []
            if sum(found.cancels) <= payment.refunded_amount:
                return []
            try:
                fresh = await gateway.lookup_payment(payment_key)
            except GatewayError:
                return []
            if fresh is None:
                return []
            amount = await self.run_sync(self.book.record_provider_refund, pay_id, payment.version, fresh.cancels, now)
            if amount:
                return [f"provider refund of {amount} recorded"]
            found = fresh
        return []
