"""The ports the domain needs from the outside world: a payment gateway and a clock.

Gateways are async (they talk HTTP); the ledger is synchronous (eventsourcing),
so the billing use cases in `domain/billing.py` await the gateway and run ledger
commands in a thread.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class DeclineCode(str, enum.Enum):
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    CARD_SUSPENDED = "CARD_SUSPENDED"
    INVALID_BILLING_KEY = "INVALID_BILLING_KEY"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    NETWORK_ERROR = "NETWORK_ERROR"
    OTHER = "OTHER"


#: Declines that must not be sent to the provider again with the same method (SPEC §3).
HARD_DECLINES = frozenset({DeclineCode.CARD_SUSPENDED, DeclineCode.INVALID_BILLING_KEY})


class ChargeStatus(str, enum.Enum):
    APPROVED = "APPROVED"  # the provider charged the card
    DECLINED = "DECLINED"  # the provider (or the network, before sending) said no: nothing charged
    UNKNOWN = "UNKNOWN"  # the request may have reached the provider; outcome not known


@dataclass(frozen=True)
class BillingKey:
    billing_key: str
    card_masked: str | None


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    order_id: str
    payment_key: str | None = None
    amount: int | None = None
    approved_at: datetime | None = None
    decline_code: DeclineCode | None = None
    provider_code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class RefundResult:
    ok: bool
    refunded_amount: int = 0
    provider_code: str | None = None
    message: str | None = None


class GatewayError(Exception):
    """A gateway call that did not give a usable answer (e.g. billing-key issue refused)."""

    def __init__(self, decline_code: DeclineCode, provider_code: str | None, message: str) -> None:
        super().__init__(message)
        self.decline_code = decline_code
        self.provider_code = provider_code
        self.message = message


class PaymentGateway(Protocol):
    """One provider (SANDBOX, TOSS, ...). Every call carries the order id as
    the idempotency key, so repeating a call never charges twice."""

    provider: str

    async def issue_billing_key(self, auth_key: str, customer_key: str) -> BillingKey:
        """Exchange the widget's authKey for a billing key; raises GatewayError."""

    async def charge(
        self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str
    ) -> ChargeResult:
        """Charge once under `order_id` (also the Idempotency-Key); never raises for declines."""

    async def refund(self, payment_key: str, amount: int, reason: str, idempotency_key: str) -> RefundResult:
        """Refund part or all of a charge."""

    async def lookup_order(self, order_id: str) -> ChargeResult | None:
        """The outcome of an order at the provider; None when the provider has no such order.
        Raises GatewayError(NETWORK_ERROR) when the provider cannot be asked."""

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        """Sandbox only: how later charges on this billing key end; raises SandboxOnly elsewhere."""

    async def aclose(self) -> None:
        """Release connections."""


class Clock(Protocol):
    #: True for the test clock, which only moves through `advance_to`.
    controllable: bool

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""

    def advance_to(self, when: datetime) -> None:
        """Test clock only: move to `when` (never backwards)."""


class PersonalDataKeys(Protocol):
    """Per-subject encryption keys of personal data (SPEC §7). Deleting a key
    is the erasure: whatever was sealed with it can never be read again."""

    def key(self, subject: str, *, create: bool) -> bytes | None:
        """The subject's key; with `create`, made on first use. None when there is none (erased)."""

    def destroy(self, subject: str) -> bool:
        """Delete the subject's key; True when there was one."""
