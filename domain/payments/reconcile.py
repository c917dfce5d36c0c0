"""Reconciliation: the ledger's payments against the gateways' own records.

For every payment of a period the gateway is asked what it holds for that order
(its state, amount and cancellations), and every order the gateway charged in the
period must be a payment the ledger knows. Each disagreement is reported; none
is repaired here — the settle job finishes what is merely PENDING, and a real
disagreement needs a person. `subledger audit reconcile` and the AUDITOR query
`reconciliation` run it.
"""
from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.ids import payment_id as payment_id_of
from domain.payments.payment import PAID, PENDING, Payment
from domain.ports import ChargeResult, DeclineCode, GatewayError, PaymentGateway, lookup_charge

#: A movement PENDING for longer than this should have been settled by now.
SETTLE_DELAY = timedelta(minutes=1)


class Finding(enum.StrEnum):
    CHARGED_NOT_SUCCEEDED = "CHARGED_NOT_SUCCEEDED"  # the gateway took money the ledger does not count as paid
    SUCCEEDED_NOT_CHARGED = "SUCCEEDED_NOT_CHARGED"  # the ledger counts money the gateway never took
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS"
    REFUNDS_DIFFER = "REFUNDS_DIFFER"  # what the gateway gave back is not what the ledger settled
    STALE_PENDING_CHARGE = "STALE_PENDING_CHARGE"
    STALE_PENDING_REFUND = "STALE_PENDING_REFUND"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"  # charged at the gateway, no payment in the ledger
    LOOKUP_FAILED = "LOOKUP_FAILED"  # the gateway could not be asked: nothing is proven either way


@dataclass(frozen=True)
class Disagreement:
    finding: Finding
    provider: str
    order_id: str
    payment_id: str | None
    ledger: str  # what the ledger holds, in a few words
    gateway: str  # what the gateway holds


@dataclass
class Report:
    since: datetime | None
    until: datetime
    payments_checked: int = 0
    gateway_orders_checked: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.disagreements


def compare(payment: Payment, found: ChargeResult | None, now: datetime) -> list[Finding]:
    """What is wrong between one payment and the gateway's record of its order (pure)."""
    stale = now - payment.created_at > SETTLE_DELAY
    if payment.status == PENDING:
        return [Finding.STALE_PENDING_CHARGE] if stale else []
    charged = found is not None and found.charged
    paid = payment.status in PAID
    if charged and not paid:
        return [Finding.CHARGED_NOT_SUCCEEDED]
    if paid and not charged:
        return [Finding.SUCCEEDED_NOT_CHARGED]
    if not paid:
        return []
    assert found is not None
    findings = []
    if found.amount is not None and found.amount != payment.amount:
        findings.append(Finding.AMOUNT_DIFFERS)
    cancelled = sum(found.cancels)
    pending = payment.pending_refund
    if pending is not None and now - pending.requested_at > SETTLE_DELAY:
        findings.append(Finding.STALE_PENDING_REFUND)
    # A refund in flight may or may not show at the gateway yet; anything else must match.
    allowed = {payment.refunded_amount} | ({payment.refunded_amount + pending.amount} if pending else set())
    if cancelled not in allowed:
        findings.append(Finding.REFUNDS_DIFFER)
    return findings


def _describe_ledger(payment: Payment) -> str:
    text = f"{payment.status.value} {payment.amount} won, refunded {payment.refunded_amount}"
    pending = payment.pending_refund
    return text + (f", refund of {pending.amount} PENDING" if pending else "")


def _describe_gateway(found: ChargeResult | None) -> str:
    if found is None:
        return "no such order"
    return f"{found.gateway_status} {found.amount} won, cancelled {sum(found.cancels)}"


class Reconciler:
    def __init__(
        self, gateways: dict[str, PaymentGateway], load: Callable[[Any], Awaitable[Payment | None]],
    ) -> None:
        self.gateways = gateways
        self.load = load

    async def run(
        self, payment_ids: Iterable[Any], since: datetime | None, until: datetime, now: datetime,
        progress: Callable[[int], None] = lambda _: None, listed_until: datetime | None = None,
    ) -> Report:
        """`listed_until`: the end of the gateways' listing, if not `until` (their clock is real time)."""
        report = Report(since, until)
        for pay_id in payment_ids:
            payment = await self.load(pay_id)
            progress(1)
            if payment is None:
                continue
            report.payments_checked += 1
            report.disagreements.extend(await self._check(payment, now))
        for provider, gateway in sorted(self.gateways.items()):
            report.disagreements.extend(await self._unknown_orders(provider, gateway, since, listed_until or until, report))
        return report

    async def _check(self, payment: Payment, now: datetime) -> list[Disagreement]:
        gateway = self.gateways.get(payment.provider)
        try:
            if gateway is None:
                raise GatewayError(DeclineCode.OTHER, None, f"provider {payment.provider} is not enabled")
            found = await lookup_charge(gateway, payment.order_id, payment.payment_key)
        except GatewayError as error:
            return [Disagreement(Finding.LOOKUP_FAILED, payment.provider, payment.order_id, str(payment.id),
                                 _describe_ledger(payment), error.message)]
        return [
            Disagreement(finding, payment.provider, payment.order_id, str(payment.id), _describe_ledger(payment),
                         _describe_gateway(found))
            for finding in compare(payment, found, now)
        ]

    async def _unknown_orders(
        self, provider: str, gateway: PaymentGateway, since: datetime | None, until: datetime, report: Report
    ) -> list[Disagreement]:
        try:
            orders = await gateway.list_transactions(since or datetime(2000, 1, 1, tzinfo=until.tzinfo), until)
        except GatewayError as error:
            return [Disagreement(Finding.LOOKUP_FAILED, provider, "*", None, "", f"transactions: {error.message}")]
        found, seen = [], set()
        for order in orders:
            if order.order_id in seen:  # a provider lists each cancellation of an order as its own transaction
                continue
            seen.add(order.order_id)
            report.gateway_orders_checked += 1
            if await self.load(payment_id_of(order.order_id)) is None:
                found.append(Disagreement(Finding.UNKNOWN_ORDER, provider, order.order_id, None, "no payment",
                                          f"{order.status} {order.amount} won at {order.at.isoformat()}"))
        return found
