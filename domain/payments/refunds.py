"""The pure rules of refunds: what a points refund gives back, and what a lookup
at the provider says about the refund in flight."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from domain.payments.payment import Payment


@dataclass(frozen=True)
class RefundTicket:
    """A recorded refund to send: the payment and the refund's id within it."""

    payment_id: str
    refund_id: str

    def encode(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "refund_id": self.refund_id}

    @classmethod
    def decode(cls, stored: dict[str, Any]) -> RefundTicket:
        return cls(stored["payment_id"], stored["refund_id"])


@dataclass(frozen=True)
class Reservation:
    """What a refund may give back at most (`limit`, None: the payment's refundable
    amount) and what it takes back with it: `points` from lot `lot_id`, recorded by the
    `aggregates` saved in the same transaction as the refund."""

    limit: int | None = None
    points: int = 0
    lot_id: str | None = None
    aggregates: tuple[Any, ...] = ()


def points_refund_quote(payment: Payment, lot_amount: int, lot_remaining: int) -> int:
    """Money back for the unspent part of a purchase's lot: floor(price × unspent / lot size),
    never more than is still refundable. The lot holds the bought points and the bonus
    together, so spending draws on both in proportion."""
    if lot_remaining <= 0 or lot_amount <= 0:
        return 0
    return min(payment.refundable, payment.amount * lot_remaining // lot_amount)


class LookupVerdict(enum.Enum):
    DONE = "DONE"  # the provider's cancellations include the refund in flight
    ABSENT = "ABSENT"  # they do not: it was never processed (or is still on its way)
    DISAGREES = "DISAGREES"  # they differ from the ledger in some other way: reconcile reports it


def refund_verdict(payment: Payment, cancels: tuple[int, ...]) -> LookupVerdict:
    """Judge the one PENDING refund of `payment` by the provider's cancellations.

    The ledger lets one refund of a payment be in flight at a time, so what the
    provider cancelled beyond the settled refunds is either nothing or exactly that
    refund's amount."""
    refund = payment.pending_refund
    beyond = sum(cancels) - payment.refunded_amount
    if refund is not None and beyond == refund.amount:
        return LookupVerdict.DONE
    if beyond == 0:
        return LookupVerdict.ABSENT
    return LookupVerdict.DISAGREES
