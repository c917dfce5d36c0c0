"""The ports the domain needs from the outside world: a payment gateway and a clock.

Gateways are async (they talk HTTP); the ledger is synchronous (eventsourcing),
so the billing use cases in `domain/payments/flows.py` await the gateway and run ledger
commands in a thread.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


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
    """A charge's answer, or what an order lookup found. Only terminal provider states
    are APPROVED or DECLINED; anything still moving at the provider is UNKNOWN."""

    status: ChargeStatus
    order_id: str
    payment_key: str | None = None
    amount: int | None = None
    approved_at: datetime | None = None
    decline_code: DeclineCode | None = None
    provider_code: str | None = None
    message: str | None = None
    #: The provider's own word for the order's state (Toss: DONE, IN_PROGRESS, CANCELED…).
    gateway_status: str | None = None
    #: Amounts of the order's cancellations (refunds) at the provider, oldest first.
    cancels: tuple[int, ...] = ()
    #: The provider's receipt page for the charge (Toss: `receipt.url`), if it gave one.
    receipt_url: str | None = None

    @property
    def charged(self) -> bool:
        """The provider took the money for this order (it may have given some back since)."""
        return self.gateway_status in CHARGED_STATES if self.gateway_status else self.status == ChargeStatus.APPROVED


#: Provider states of an order whose money was taken (Toss names; other providers map onto them).
CHARGED_STATES = frozenset({"DONE", "PARTIAL_CANCELED", "CANCELED"})


class RefundStatus(str, enum.Enum):
    DONE = "DONE"  # the provider gave the money back
    REFUSED = "REFUSED"  # the provider definitely did not process it (nothing was refunded)
    UNKNOWN = "UNKNOWN"  # the request may have been processed; look the payment up


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    refunded_amount: int = 0
    provider_code: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == RefundStatus.DONE


@dataclass(frozen=True)
class GatewayTransaction:
    """One order as the provider's transaction listing shows it (reconciliation)."""

    order_id: str
    payment_key: str
    status: str
    amount: int
    at: datetime


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
        """Refund part or all of a charge under `idempotency_key` (a repeat never refunds twice);
        never raises for refusals; UNKNOWN when the answer was lost."""

    async def lookup_order(self, order_id: str) -> ChargeResult | None:
        """The outcome of an order at the provider, with its cancellations; None when the
        provider has no such order. Raises GatewayError(NETWORK_ERROR) when it cannot be asked."""

    async def lookup_payment(self, payment_key: str) -> ChargeResult | None:
        """The payment the provider holds under its own key (what a notification names), with
        its order id and cancellations; None when it has none. Raises GatewayError when it
        cannot be asked."""

    async def list_transactions(self, since: datetime, until: datetime) -> list[GatewayTransaction]:
        """Every order the provider charged in [since, until) (reconciliation); raises GatewayError."""

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        """Sandbox only: how later charges on this billing key end; raises SandboxOnly elsewhere."""

    async def aclose(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class Redirect:
    """Where a front end sends the payer to approve a provider's regular payments (KakaoPay,
    NaverPay), and the id `registerPaymentMethod` completes the registration with."""

    registration_id: str
    pc_url: str | None
    mobile_url: str | None
    app_url: str | None


@runtime_checkable
class RedirectRegistration(Protocol):
    """A provider whose billing key comes from a payer's approval on its own pages."""

    async def begin_registration(self, customer_key: str, approval_url: str, cancel_url: str, fail_url: str) -> Redirect:
        """Ask the provider for the approval pages; raises GatewayError."""

    async def complete_registration(self, registration_id: str, approval_token: str, customer_key: str) -> BillingKey:
        """Exchange the payer's approval token for a billing key; raises GatewayError."""


async def lookup_charge(gateway: PaymentGateway, order_id: str, payment_key: str | None) -> ChargeResult | None:
    """`lookup_order`, passing the provider's own key of the payment to a provider that finds
    orders only by it (KakaoPay's tid: `looks_up_by_payment_key`)."""
    if getattr(gateway, "looks_up_by_payment_key", False):
        return await gateway.lookup_order(order_id, payment_key=payment_key)  # type: ignore[call-arg]
    return await gateway.lookup_order(order_id)


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

    def keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The keys of those subjects that have one, in one lookup (decoding a batch of events)."""

    def sealing_keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The key of every subject, made for those without one: what a save seals with, fetched together."""

    def destroy(self, subject: str) -> bool:
        """Delete the subject's key; True when there was one."""
