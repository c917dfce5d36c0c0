"""An in-memory payment provider that follows Toss Payments' billing rules.

Every operation answers a `Reply` (HTTP status + Toss-shaped JSON body), so the
ASGI app in `sandbox_app.py` only translates HTTP, and tests can drive the same
rules, outcomes and faults directly from Python.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

KST = timezone(timedelta(hours=9), "KST")

# Decline replies in Toss' words: (HTTP status, Toss code, message).
_INSUFFICIENT_FUNDS = (403, "REJECT_CARD_PAYMENT", "한도초과 혹은 잔액부족으로 결제에 실패했습니다.")
_LIMIT_EXCEEDED = (400, "EXCEED_MAX_AMOUNT", "거래금액 한도를 초과했습니다.")
_CARD_SUSPENDED = (403, "INVALID_STOPPED_CARD", "정지된 카드 입니다.")
_INVALID_BILLING_KEY = (400, "INVALID_BILLING_KEY", "유효하지 않은 빌링키 입니다.")
_NOT_FOUND_BILLING_KEY = (404, "NOT_FOUND_BILLING_KEY", "존재하지 않는 빌링키 입니다.")

#: seed 004's test cards; any other well-formed card number succeeds.
TEST_CARD_DECLINES = {
    "4300000000000002": _INSUFFICIENT_FUNDS,
    "4300000000000003": _LIMIT_EXCEEDED,
    "4300000000000004": _CARD_SUSPENDED,
}

#: schema.graphql `SandboxOutcome`: None means the charge goes through.
OUTCOME_DECLINES: dict[str, tuple[int, str, str] | None] = {
    "SUCCEED": None,
    "INSUFFICIENT_FUNDS": _INSUFFICIENT_FUNDS,
    "LIMIT_EXCEEDED": _LIMIT_EXCEEDED,
    "CARD_SUSPENDED": _CARD_SUSPENDED,
    "INVALID_BILLING_KEY": _INVALID_BILLING_KEY,
}
#: Outcomes that fail one charge without processing it, then let charges succeed.
OUTCOME_ONCE = {
    "SERVER_ERROR_ONCE": (500, "FAILED_INTERNAL_SYSTEM_PROCESSING", "내부 시스템 처리 작업이 실패했습니다."),
    "RATE_LIMITED_ONCE": (429, "TOO_MANY_REQUESTS", "요청량이 많습니다. 잠시 후 다시 시도해주세요."),
}
OUTCOMES = frozenset(OUTCOME_DECLINES) | frozenset(OUTCOME_ONCE)

_ISSUER = {"issuerCode": "61", "acquirerCode": "31"}
_AUTH_KEY = re.compile(r"test_card_(\d{16})")
# The billing key carries the card number and a digest of the customer key, so a
# key issued before a restart of the (memoryless) engine stays chargeable.
_BILLING_KEY = re.compile(r"bk_sbx_(\d{16})_([0-9a-f]{8})_[0-9a-f]{12}")


class TossError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, reply: tuple[int, str, str]) -> TossError:
        return cls(*reply)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    #: Processed, but the caller must never see the answer (charge-then-drop fault).
    dropped: bool = False


@dataclass
class Faults:
    latency_ms: int = 0
    error_burst_status: int = 500
    error_burst_count: int = 0
    drop_responses: int = 0
    refuse: bool = False
    #: Order lookups answer 503 while charges still work: an outcome stays unknown.
    lookups_down: bool = False
    max_concurrency: int | None = None


@dataclass
class _Order:
    payment_key: str
    order_id: str
    order_name: str
    amount: int
    card_number: str
    requested_at: datetime
    status: str = "DONE"
    approved_at: datetime | None = None
    balance: int = 0
    cancels: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mId": "tvivarepublica",
            "version": "2022-11-16",
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "orderName": self.order_name,
            "status": self.status,
            "type": "BILLING",
            "currency": "KRW",
            "totalAmount": self.amount,
            "balanceAmount": self.balance,
            "requestedAt": _rfc3339(self.requested_at),
            "approvedAt": _rfc3339(self.approved_at) if self.approved_at else None,
            "method": "카드",
            "card": {"number": mask(self.card_number), "amount": self.amount, "approveNo": "00000000"},
            "cancels": [dict(c) for c in self.cancels] or None,
            "failure": self.failure,
        }


def mask(card_number: str) -> str:
    return f"{card_number[:4]}********{card_number[-4:]}"


def _rfc3339(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _now() -> datetime:
    return datetime.now(KST)


def _customer_digest(customer_key: str) -> str:
    return hashlib.sha256(customer_key.encode()).hexdigest()[:8]


def _error(exc: TossError) -> Reply:
    return Reply(exc.status, {"code": exc.code, "message": exc.message})


def _payment_key() -> str:
    return f"sbx_pay_{secrets.token_hex(16)}"


class SandboxEngine:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.faults = Faults()
        self._semaphore: asyncio.Semaphore | None = None
        self._orders: dict[str, _Order] = {}
        self._by_payment_key: dict[str, _Order] = {}
        self._charges: list[dict[str, Any]] = []
        self._outcomes: dict[str, str] = {}
        self._replies: dict[tuple[str, str], Reply] = {}
        self._in_flight: set[tuple[str, str]] = set()

    # -- sandbox controls (not Toss) -------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        """Replace the whole fault configuration (a field left out means no such fault)."""
        self.faults = faults
        self._semaphore = asyncio.Semaphore(faults.max_concurrency) if faults.max_concurrency else None

    def set_outcome(self, billing_key: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise TossError(400, "INVALID_REQUEST", f"unknown outcome {outcome!r}")
        if not _BILLING_KEY.fullmatch(billing_key):
            raise TossError.of(_NOT_FOUND_BILLING_KEY)
        self._outcomes[billing_key] = outcome

    def charges(self) -> list[dict[str, Any]]:
        """Every approved charge, in order: what the card holder would see on a statement."""
        return [dict(c) for c in self._charges]

    # -- the Toss API ----------------------------------------------------------------

    async def issue_billing_key(self, auth_key: str, customer_key: str, idempotency_key: str | None = None) -> Reply:
        return await self._serve("issue", idempotency_key, lambda: self._issue(auth_key, customer_key))

    async def charge(
        self,
        billing_key: str,
        customer_key: str,
        amount: int,
        order_id: str,
        order_name: str,
        idempotency_key: str | None = None,
    ) -> Reply:
        reply = await self._serve(
            "charge",
            idempotency_key,
            lambda: self._charge(billing_key, customer_key, amount, order_id, order_name),
        )
        if self.faults.drop_responses > 0 and _processed(reply.status):
            self.faults.drop_responses -= 1
            return Reply(reply.status, reply.body, dropped=True)
        return reply

    async def cancel(
        self, payment_key: str, cancel_reason: str, cancel_amount: int | None = None, idempotency_key: str | None = None
    ) -> Reply:
        return await self._serve(
            f"cancel:{payment_key}", idempotency_key, lambda: self._cancel(payment_key, cancel_reason, cancel_amount)
        )

    async def lookup_order(self, order_id: str) -> Reply:
        return await self._serve("lookup", None, lambda: self._lookup(order_id))

    async def _serve(self, scope: str, idempotency_key: str | None, operation: Callable[[], dict[str, Any]]) -> Reply:
        """Faults, then Toss' idempotency: a key already answered gets that answer again,
        a key still being processed gets 409 (like Toss), a new key is processed once.
        The check-process-store step has no await inside, so it is atomic on the loop."""
        if self.faults.refuse or (scope == "lookup" and self.faults.lookups_down):
            return _error(TossError(503, "SERVICE_UNAVAILABLE", "sandbox gateway is down"))
        key = (scope, idempotency_key) if idempotency_key else None
        if key in self._in_flight:
            return _error(TossError(409, "IDEMPOTENT_REQUEST_PROCESSING", "이전 멱등 요청이 처리중입니다."))
        if key:
            self._in_flight.add(key)
        try:
            async with self._admission():
                if self.faults.error_burst_count > 0:
                    self.faults.error_burst_count -= 1
                    status = self.faults.error_burst_status
                    return _error(TossError(status, "FAILED_INTERNAL_SYSTEM_PROCESSING", f"injected {status}"))
                if key in self._replies:
                    return self._replies[key]
                try:
                    reply = Reply(200, operation())
                except TossError as exc:
                    reply = _error(exc)
                # Toss keeps no answer it did not process (5xx, 429): a retry runs anew.
                if key and _processed(reply.status):
                    self._replies[key] = reply
                return reply
        finally:
            if key:
                self._in_flight.discard(key)

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        # Non-blocking latency inside the concurrency cap: N callers under a cap of C
        # take about ceil(N / C) × latency, like a provider that queues requests.
        semaphore = self._semaphore or contextlib.nullcontext()
        async with semaphore:
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            yield

    def _issue(self, auth_key: str, customer_key: str) -> dict[str, Any]:
        match = _AUTH_KEY.fullmatch(auth_key)
        if not match or not customer_key:
            raise TossError(400, "INVALID_AUTH_KEY", "유효하지 않은 authKey 입니다. (sandbox: test_card_<16 digits>)")
        number = match.group(1)
        return {
            "mId": "tvivarepublica",
            "customerKey": customer_key,
            "authenticatedAt": _rfc3339(_now()),
            "method": "카드",
            "billingKey": f"bk_sbx_{number}_{_customer_digest(customer_key)}_{secrets.token_hex(6)}",
            "card": {"number": mask(number), "cardType": "신용", "ownerType": "개인"} | _ISSUER,
        }

    def _charge(
        self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str
    ) -> dict[str, Any]:
        if amount <= 0:
            raise TossError(400, "INVALID_REQUEST", "결제 금액은 0보다 커야 합니다.")
        if order_id in self._orders:
            raise TossError(400, "DUPLICATED_ORDER_ID", "이미 승인 및 취소가 진행된 중복된 주문번호 입니다.")
        outcome = self._outcomes.get(billing_key)
        if outcome in OUTCOME_ONCE:
            self._outcomes[billing_key] = "SUCCEED"
            raise TossError.of(OUTCOME_ONCE[outcome])
        match = _BILLING_KEY.fullmatch(billing_key)
        card_number = match.group(1) if match else "0000000000000000"
        order = _Order(_payment_key(), order_id, order_name, amount, card_number, _now())
        if not match:
            decline = _NOT_FOUND_BILLING_KEY
        elif match.group(2) != _customer_digest(customer_key):
            decline = (400, "NOT_MATCHES_CUSTOMER_KEY", "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.")
        elif outcome is not None:
            decline = OUTCOME_DECLINES[outcome]
        else:
            decline = TEST_CARD_DECLINES.get(card_number)
        self._orders[order_id] = order
        self._by_payment_key[order.payment_key] = order
        if decline:
            # A declined order is remembered, so a lookup can settle it as failed.
            order.status = "ABORTED"
            order.failure = {"code": decline[1], "message": decline[2]}
            raise TossError.of(decline)
        order.approved_at = _now()
        order.balance = amount
        self._charges.append({"orderId": order_id, "amount": amount, "paymentKey": order.payment_key})
        return order.to_json()

    def _cancel(self, payment_key: str, reason: str, amount: int | None) -> dict[str, Any]:
        order = self._by_payment_key.get(payment_key)
        if order is None:
            raise TossError(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")
        if order.status == "CANCELED":
            raise TossError(400, "ALREADY_CANCELED_PAYMENT", "이미 취소된 결제 입니다.")
        if order.status not in ("DONE", "PARTIAL_CANCELED"):
            raise TossError(403, "NOT_CANCELABLE_PAYMENT", "취소 할 수 없는 결제 입니다.")
        amount = order.balance if amount is None else amount
        if amount <= 0:
            raise TossError(400, "INVALID_REQUEST", "취소 금액은 0보다 커야 합니다.")
        if amount > order.balance:
            raise TossError(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.")
        order.balance -= amount
        order.status = "CANCELED" if order.balance == 0 else "PARTIAL_CANCELED"
        cancel = {"cancelAmount": amount, "cancelReason": reason, "canceledAt": _rfc3339(_now())}
        order.cancels.append({**cancel, "transactionKey": secrets.token_hex(16), "cancelStatus": "DONE"})
        return order.to_json()

    def _lookup(self, order_id: str) -> dict[str, Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise TossError(404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")
        return order.to_json()


def _processed(status: int) -> bool:
    """False for answers given without processing the request (in flight, rate
    limited, server errors): they are never replayed and never dropped."""
    return status < 500 and status not in (409, 429)
