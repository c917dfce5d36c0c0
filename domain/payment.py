"""One charge at a provider: recorded PENDING before the gateway is called,
settled (SUCCEEDED/FAILED) after, refunded in part or whole later.

The payment's id is derived from its order id (`domain.ids.payment_id`), so two
writers that race to charge the same order collide on the version-1 insert:
one wins and calls the gateway, the other stops (DESIGN.md, Charging exactly once).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.ids import payment_id

from domain.errors import Conflict, InvalidInput

PENDING, SUCCEEDED, FAILED = "PENDING", "SUCCEEDED", "FAILED"
REFUNDED, PARTIALLY_REFUNDED = "REFUNDED", "PARTIALLY_REFUNDED"


class Payment(Aggregate):
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
        self.status = PENDING
        self.payment_key: str | None = None
        self.paid_at: datetime | None = None
        self.failure_code: str | None = None
        self.provider_failure_code: str | None = None
        self.failure_message: str | None = None
        self.refunded_amount = 0
        self.refunds: list[dict[str, Any]] = []

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded_amount if self.status in (SUCCEEDED, PARTIALLY_REFUNDED) else 0

    def succeed(self, payment_key: str, paid_at: datetime, at: datetime) -> None:
        if self.status != PENDING:
            raise Conflict(f"payment {self.order_id} is already {self.status}")
        self._succeeded(payment_key=payment_key, paid_at=paid_at, at=at)

    def fail(self, failure_code: str, provider_failure_code: str | None, message: str | None, at: datetime) -> None:
        if self.status != PENDING:
            raise Conflict(f"payment {self.order_id} is already {self.status}")
        self._failed(
            failure_code=failure_code,
            provider_failure_code=provider_failure_code,
            message=message,
            at=at,
        )

    def check_refundable(self, amount: int) -> None:
        if self.refundable <= 0:
            raise Conflict(f"payment {self.order_id} is {self.status}: nothing to refund")
        if amount <= 0 or amount > self.refundable:
            raise InvalidInput(f"refund amount must be between 1 and {self.refundable}, got {amount}")

    def refund(self, amount: int, reason: str, at: datetime, key: str | None = None, fingerprint: str | None = None) -> None:
        self.check_refundable(amount)
        self._refunded(amount=amount, reason=reason, key=key, fingerprint=fingerprint, at=at)

    @event("Succeeded")
    def _succeeded(self, payment_key: str, paid_at: datetime, at: datetime) -> None:
        self.status = SUCCEEDED
        self.payment_key = payment_key
        self.paid_at = paid_at

    @event("Failed")
    def _failed(self, failure_code: str, provider_failure_code: str | None, message: str | None, at: datetime) -> None:
        self.status = FAILED
        self.failure_code = failure_code
        self.provider_failure_code = provider_failure_code
        self.failure_message = message

    @event("Refunded")
    def _refunded(self, amount: int, reason: str, key: str | None, fingerprint: str | None, at: datetime) -> None:
        self.refunded_amount += amount
        self.refunds.append({"amount": amount, "reason": reason, "key": key, "fingerprint": fingerprint, "at": at})
        self.status = REFUNDED if self.refunded_amount >= self.amount else PARTIALLY_REFUNDED
