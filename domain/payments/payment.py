"""One charge at a provider, and the refunds made against it.

A charge is recorded PENDING before the gateway is called and settled
(SUCCEEDED/FAILED) from the gateway's answer. Its id is derived from its order id
(`domain.ids.payment_id`), so two writers racing to charge the same order collide
on the version-1 insert: one wins and calls the gateway, the other stops.

A refund is a movement of its own inside the payment's stream: `RefundRequested`
reserves its amount (so concurrent refunds can never exceed what was paid) and
names its provider idempotency key, decided in the same transaction;
`Refunded` or `RefundFailed` settles it. At most one refund of a payment is
PENDING at a time, so a lookup at the provider (the payment's cancellations)
always tells which refund a cancellation belongs to. docs/payments.md draws both
state machines.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.copying import copy_aggregate
from domain.errors import Conflict, InvalidInput
from domain.ids import payment_id


class PaymentStatus(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"


class RefundStatus(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


# Kept for the many callers that compare a payment's status with a name.
PENDING, SUCCEEDED, FAILED = PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED
REFUNDED, PARTIALLY_REFUNDED = PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED
#: Statuses of a payment whose money was taken (some may have been given back).
PAID = frozenset({SUCCEEDED, PARTIALLY_REFUNDED, REFUNDED})


@dataclass
class Refund:
    """One refund of a payment: what it gives back, under which provider key, and
    what it reserved (a points refund takes back `points` from lot `lot_id`)."""

    id: str
    key: str
    amount: int
    reason: str
    requested_at: datetime
    status: RefundStatus = RefundStatus.PENDING
    points: int = 0
    lot_id: str | None = None
    settled_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class Payment(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(order_id: str, **_: Any) -> UUID:
        return payment_id(order_id)

    @event("Requested")
    def __init__(
        self,
        order_id: str,
        order_name: str,
        user_id: str,
        provider: str,
        kind: str,
        amount: int,
        payment_method_id: str,
        subscription_id: str | None,
        attempt: int,
        purpose: dict[str, Any],
        at: datetime,
    ) -> None:
        self.order_id = order_id
        self.order_name = order_name
        self.user_id = user_id
        self.provider = provider
        self.kind = kind
        self.amount = amount
        self.payment_method_id = payment_method_id
        self.subscription_id = subscription_id
        self.attempt = attempt
        self.purpose = purpose
        self.created_at = at
        self.status = PaymentStatus.PENDING
        self.payment_key: str | None = None
        self.paid_at: datetime | None = None
        self.receipt_url: str | None = None
        self.failure_code: str | None = None
        self.provider_failure_code: str | None = None
        self.failure_message: str | None = None
        self.refunded_amount = 0  # settled refunds only
        self.refunds: list[Refund] = []

    # ------------------------------------------------------------ reads
    @property
    def reserved(self) -> int:
        """Money promised back by refunds not settled yet."""
        return sum(r.amount for r in self.refunds if r.status == RefundStatus.PENDING)

    @property
    def refundable(self) -> int:
        if self.status not in PAID:
            return 0
        return self.amount - self.refunded_amount - self.reserved

    @property
    def unsettled(self) -> bool:
        """The charge or one of its refunds still waits for the provider's answer."""
        return self.status == PaymentStatus.PENDING or self.pending_refund is not None

    @property
    def pending_refund(self) -> Refund | None:
        return next((r for r in self.refunds if r.status == RefundStatus.PENDING), None)

    def refund(self, refund_id: str) -> Refund:
        for refund in self.refunds:
            if refund.id == refund_id:
                return refund
        raise LookupError(f"payment {self.order_id} has no refund {refund_id}")

    # ------------------------------------------------------------ the charge
    def succeed(self, payment_key: str, paid_at: datetime, at: datetime, receipt_url: str | None = None) -> None:
        if self.status != PENDING:
            raise Conflict(f"payment {self.order_id} is already {self.status.value}")
        self._succeeded(payment_key=payment_key, paid_at=paid_at, at=at, receipt_url=receipt_url)

    def fail(self, failure_code: str, provider_failure_code: str | None, message: str | None, at: datetime) -> None:
        if self.status != PENDING:
            raise Conflict(f"payment {self.order_id} is already {self.status.value}")
        self._failed(failure_code=failure_code, provider_failure_code=provider_failure_code, message=message, at=at)

    # ------------------------------------------------------------ refunds
    def check_refundable(self, amount: int, limit: int | None = None) -> None:
        """`limit`: a lower ceiling than the refundable amount (a points refund's quote)."""
        if self.pending_refund is not None:
            raise Conflict(f"a refund of payment {self.order_id} is still being processed; try again later")
        ceiling = self.refundable if limit is None else min(limit, self.refundable)
        if ceiling <= 0:
            raise Conflict(f"payment {self.order_id} ({self.status.value}) has nothing left to refund")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount > ceiling:
            raise InvalidInput(f"refund amount must be between 1 and {ceiling}, got {amount}")

    def request_refund(
        self, amount: int, reason: str, at: datetime, *, points: int = 0, lot_id: str | None = None,
        limit: int | None = None,
    ) -> Refund:
        """Reserve `amount` for a refund and name its provider key; settled later."""
        self.check_refundable(amount, limit)
        number = len(self.refunds) + 1
        self._refund_requested(
            refund_id=str(uuid5(self.id, f"refund:{number}")), key=f"{self.order_id}-rf{number}",
            amount=amount, reason=reason, points=points, lot_id=lot_id, at=at,
        )
        return self.refunds[-1]

    def settle_refund(self, refund_id: str, succeeded: bool, at: datetime, code: str | None = None,
                      message: str | None = None) -> bool:
        """Settle a PENDING refund; False (nothing recorded) when it is settled already."""
        refund = self.refund(refund_id)
        if refund.status != RefundStatus.PENDING:
            return False
        if succeeded:
            self._refunded(refund_id=refund_id, amount=refund.amount, reason=refund.reason, key=refund.key, at=at)
        else:
            self._refund_failed(refund_id=refund_id, code=code, message=message, at=at)
        return True

    def record_provider_refund(self, amount: int, reason: str, at: datetime) -> Refund:
        """A refund the provider already made without the ledger asking (a cancel in its
        dashboard): requested and settled in one save, so it never waits for an answer.
        Its key names it as the provider's (`<orderId>-px<n>`); it reserves nothing."""
        if self.status not in PAID or self.pending_refund is not None:
            raise Conflict(f"payment {self.order_id} ({self.status.value}) cannot take a provider refund now")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= self.refundable:
            raise InvalidInput(f"provider refund must be between 1 and {self.refundable}, got {amount}")
        number = len(self.refunds) + 1
        refund_id = str(uuid5(self.id, f"refund:{number}"))
        self._refund_requested(
            refund_id=refund_id, key=f"{self.order_id}-px{number}", amount=amount, reason=reason, points=0,
            lot_id=None, at=at,
        )
        self._refunded(refund_id=refund_id, amount=amount, reason=reason, key=f"{self.order_id}-px{number}", at=at)
        return self.refunds[-1]

    # ------------------------------------------------------------ events
    class Succeeded(Aggregate.Event):
        """The provider took the money. Version 2 adds `receipt_url`, the provider's
        receipt page for the charge as its answer gave it (None when it gave none).
        Version-1 events, stored before receipts were kept, are read (upcast) with
        receipt_url None: nothing in the ledger is rewritten."""

        class_version = 2
        payment_key: str
        paid_at: datetime
        at: datetime
        receipt_url: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["receipt_url"] = None

    @event(Succeeded)
    def _succeeded(self, payment_key: str, paid_at: datetime, at: datetime, receipt_url: str | None) -> None:
        self.status = PaymentStatus.SUCCEEDED
        self.payment_key = payment_key
        self.paid_at = paid_at
        self.receipt_url = receipt_url

    @event("Failed")
    def _failed(self, failure_code: str, provider_failure_code: str | None, message: str | None, at: datetime) -> None:
        self.status = PaymentStatus.FAILED
        self.failure_code = failure_code
        self.provider_failure_code = provider_failure_code
        self.failure_message = message

    @event("RefundRequested")
    def _refund_requested(
        self, refund_id: str, key: str, amount: int, reason: str, points: int, lot_id: str | None, at: datetime
    ) -> None:
        self.refunds.append(Refund(refund_id, key, amount, reason, at, points=points, lot_id=lot_id))

    class Refunded(Aggregate.Event):
        """A refund the provider made. Version 1 recorded refunds made before the
        ledger knew of them (no request, a user's idempotency key and fingerprint)."""

        class_version = 2
        refund_id: str | None
        amount: int
        reason: str
        key: str | None
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.pop("fingerprint", None)
            state["key"] = None
            state["refund_id"] = None

    @event(Refunded)
    def _refunded(self, refund_id: str | None, amount: int, reason: str, key: str | None, at: datetime) -> None:
        if refund_id is None:  # a version-1 refund: no request came before it
            refund = Refund(f"legacy-{len(self.refunds) + 1}", key or "", amount, reason, at)
            self.refunds.append(refund)
        else:
            refund = self.refund(refund_id)
        refund.status, refund.settled_at = RefundStatus.SUCCEEDED, at
        self.refunded_amount += amount
        self.status = PaymentStatus.REFUNDED if self.refunded_amount >= self.amount else PaymentStatus.PARTIALLY_REFUNDED

    @event("RefundFailed")
    def _refund_failed(self, refund_id: str, code: str | None, message: str | None, at: datetime) -> None:
        refund = self.refund(refund_id)
        refund.status, refund.settled_at = RefundStatus.FAILED, at
        refund.failure_code, refund.failure_message = code, message


# The aggregate lived in `domain.payment` before money had its own package: events
# stored then name that topic.
register_topic("domain.payment:Payment", Payment)
