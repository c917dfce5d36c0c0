"""An in-memory payment provider that follows Toss Payments' billing rules.

Every operation answers a `Reply` (HTTP status + Toss-shaped JSON body), so the
ASGI app in `sandbox_app.py` only translates HTTP, and tests can drive the same
rules, outcomes and faults directly from Python. Orders, refunds, receipts and the
transaction listing live in `sandbox_orders.py`.

An approval's receipt URL is on the base the charge (or `complete_order`) came in
on, so it is served by the same sandbox (`GET /receipt/redirection`); calls made
straight from Python, and the in-process sandbox, use `BASE_URL`.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateways.sandbox_orders import KST, NOT_FOUND_PAYMENT, Order, OrderBook, TossError, Unprocessed, mask, rfc3339
from gateways.sandbox_webhooks import WebhookSender

__all__ = ["BASE_URL", "KST", "Faults", "Reply", "SandboxEngine", "TossError", "mask"]

#: The in-process sandbox's base (`toss.in_process_sandbox`), and the receipts' base for calls made from Python.
BASE_URL = "https://sandbox.local"

# Decline replies in Toss' words: (HTTP status, Toss code, message).
_INSUFFICIENT_FUNDS = (403, "REJECT_CARD_PAYMENT", "한도초과 혹은 잔액부족으로 결제에 실패했습니다.")
_LIMIT_EXCEEDED = (400, "EXCEED_MAX_AMOUNT", "거래금액 한도를 초과했습니다.")
_CARD_SUSPENDED = (403, "INVALID_STOPPED_CARD", "정지된 카드 입니다.")
_INVALID_BILLING_KEY = (400, "INVALID_BILLING_KEY", "유효하지 않은 빌링키 입니다.")
_NOT_FOUND_BILLING_KEY = (404, "NOT_FOUND_BILLING_KEY", "존재하지 않는 빌링키 입니다.")
_REFUND_FAILED = (403, "FAILED_REFUND_PROCESS", "은행 응답시간 지연이나 일시적인 오류로 환불요청에 실패했습니다.")

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
#: Charges are answered 200 with status IN_PROGRESS until `complete_order` settles them.
HOLD_IN_PROGRESS = "HOLD_IN_PROGRESS"
OUTCOMES = frozenset(OUTCOME_DECLINES) | frozenset(OUTCOME_ONCE) | {HOLD_IN_PROGRESS}

_ISSUER = {"issuerCode": "61", "acquirerCode": "31"}
_AUTH_KEY = re.compile(r"test_card_(\d{16})")
# The billing key carries the card number and a digest of the customer key, so a
# key issued before a restart of the (memoryless) engine stays chargeable.
_BILLING_KEY = re.compile(r"bk_sbx_(\d{16})_([0-9a-f]{8})_[0-9a-f]{12}")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # a JSON object, or a list for the transaction listing
    #: Processed, but the caller must never see the answer (charge-then-drop fault).
    dropped: bool = False
    #: False for answers given without acting on the request (in flight, rate limited,
    #: server errors, refused refunds): never replayed and never dropped.
    processed: bool = True


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
    #: Extra latency of cancels (refunds) only.
    refund_latency_ms: int = 0
    #: The next N cancels are processed, then their answers are cut off.
    drop_refund_responses: int = 0
    #: The next N cancels answer 403 FAILED_REFUND_PROCESS without processing.
    refuse_refunds: int = 0


def _now() -> datetime:
    return datetime.now(KST)


def _customer_digest(customer_key: str) -> str:
    return hashlib.sha256(customer_key.encode()).hexdigest()[:8]


def _error(exc: TossError) -> Reply:
    processed = exc.status < 500 and exc.status not in (409, 429) and not isinstance(exc, Unprocessed)
    return Reply(exc.status, {"code": exc.code, "message": exc.message}, processed=processed)


def _payment_key() -> str:
    return f"sbx_pay_{secrets.token_hex(16)}"


class SandboxEngine:
    def __init__(self, clock: Callable[[], datetime] = _now, webhook_url: str | None = None) -> None:
        """`clock` stamps approvals, cancels and issues (aware datetimes; tests pin it);
        `webhook_url` receives Toss-shaped payment notifications (`sandbox_webhooks.py`)."""
        self._clock = clock
        self._webhook_url = webhook_url
        self.reset()

    def reset(self) -> None:
        self.faults = Faults()
        self._semaphore: asyncio.Semaphore | None = None
        self._book = OrderBook()
        self._outcomes: dict[str, str] = {}
        self._replies: dict[tuple[str, str], Reply] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._busy = 0
        self.webhooks = WebhookSender(self._webhook_url, self._clock)

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

    def complete_order(self, order_id: str, status: str, base_url: str = BASE_URL) -> dict[str, Any]:
        """Settle an IN_PROGRESS order as DONE (approved now) or ABORTED (declined as
        REJECT_CARD_PAYMENT); answers its Payment JSON. 404 unknown, 400 not IN_PROGRESS."""
        failure = {"code": _INSUFFICIENT_FUNDS[1], "message": _INSUFFICIENT_FUNDS[2]}
        payment = self._book.complete(order_id, status, self._clock(), failure, base_url)
        self.webhooks.status_changed(payment)
        return payment

    def dashboard_cancel(self, payment_key: str, amount: int | None, reason: str) -> dict[str, Any]:
        """A cancel made by a person in the merchant's dashboard, not through the API: no
        Idempotency-Key, not asked by the ledger; notified like any other status change."""
        payment = self._book.cancel(payment_key, reason, amount, self._clock(), None)
        self.webhooks.status_changed(payment)
        return payment

    def receipt(self, payment_key: str) -> Order:
        """The approved order a receipt URL names; TossError 404 NOT_FOUND_PAYMENT for any other key."""
        return self._book.receipt(payment_key)

    def charges(self) -> list[dict[str, Any]]:
        """Every approved charge, in order: what the card holder would see on a statement."""
        return self._book.charges()

    def refunds(self) -> list[dict[str, Any]]:
        """Every processed cancel, in order ({orderId, paymentKey, amount, idempotencyKey,
        transactionKey}); a replayed cancel is not a new refund."""
        return self._book.refunds()

    def cancelled_total(self, order_id: str) -> int:
        return self._book.cancelled_total(order_id)

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
        base_url: str = BASE_URL,
    ) -> Reply:
        reply = await self._serve(
            "charge",
            idempotency_key,
            lambda: self._charge(billing_key, customer_key, amount, order_id, order_name, base_url),
        )
        if self.faults.drop_responses > 0 and reply.processed:
            self.faults.drop_responses -= 1
            return Reply(reply.status, reply.body, dropped=True)
        return reply

    async def cancel(
        self, payment_key: str, cancel_reason: str, cancel_amount: int | None = None, idempotency_key: str | None = None
    ) -> Reply:
        reply = await self._serve(
            f"cancel:{payment_key}",
            idempotency_key,
            lambda: self._cancel(payment_key, cancel_reason, cancel_amount, idempotency_key),
            extra_latency_ms=self.faults.refund_latency_ms,
        )
        if self.faults.drop_refund_responses > 0 and reply.processed:
            self.faults.drop_refund_responses -= 1
            return Reply(reply.status, reply.body, dropped=True)
        return reply

    async def lookup_order(self, order_id: str) -> Reply:
        return await self._serve("lookup", None, lambda: self._lookup(order_id))

    async def lookup_payment(self, payment_key: str) -> Reply:
        """Toss' `GET /v1/payments/{paymentKey}`."""
        return await self._serve("lookup", None, lambda: self._book.by_payment_key(payment_key).to_json())

    async def list_transactions(
        self, start_date: str, end_date: str, starting_after: str | None = None, limit: int | None = None
    ) -> Reply:
        """Toss' `GET /v1/transactions`: approvals in [startDate, endDate], paged by
        `startingAfter` (the last transactionKey seen) and `limit`."""
        return await self._serve(
            "transactions", None, lambda: self._book.transactions(start_date, end_date, starting_after, limit)
        )

    async def _serve(
        self, scope: str, idempotency_key: str | None, operation: Callable[[], Any], extra_latency_ms: int = 0
    ) -> Reply:
        """Faults, then Toss' idempotency: a key already answered gets that answer again,
        a key still being processed gets 409 (like Toss), a new key is processed once.
        The check-process-store step has no await inside, so it is atomic on the loop."""
        if self.faults.refuse or (scope == "lookup" and self.faults.lookups_down):
            return _error(TossError(503, "SERVICE_UNAVAILABLE", "sandbox gateway is down"))
        self._busy += 1
        try:
            return await self._serve_keyed(scope, idempotency_key, operation, extra_latency_ms)
        finally:
            self._busy -= 1

    def busy(self) -> int:
        """Requests being processed now (a test waits for the gateway to go quiet)."""
        return self._busy

    async def _serve_keyed(
        self, scope: str, idempotency_key: str | None, operation: Callable[[], Any], extra_latency_ms: int
    ) -> Reply:
        key = (scope, idempotency_key) if idempotency_key else None
        if key in self._in_flight:
            return _error(TossError(409, "IDEMPOTENT_REQUEST_PROCESSING", "이전 멱등 요청이 처리중입니다."))
        if key:
            self._in_flight.add(key)
        try:
            async with self._admission(extra_latency_ms):
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
                # Toss keeps no answer it did not process (5xx, 429, a refused refund):
                # a retry under the same key runs anew.
                if key and reply.processed:
                    self._replies[key] = reply
                return reply
        finally:
            if key:
                self._in_flight.discard(key)

    @contextlib.asynccontextmanager
    async def _admission(self, extra_latency_ms: int = 0) -> AsyncIterator[None]:
        # Non-blocking latency inside the concurrency cap: N callers under a cap of C
        # take about ceil(N / C) × latency, like a provider that queues requests.
        semaphore = self._semaphore or contextlib.nullcontext()
        async with semaphore:
            latency_ms = self.faults.latency_ms + extra_latency_ms
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            yield

    def _issue(self, auth_key: str, customer_key: str) -> dict[str, Any]:
        match = _AUTH_KEY.fullmatch(auth_key)
        if not match or not customer_key:
            raise TossError(400, "INVALID_AUTH_KEY", "유효하지 않은 authKey 입니다. (sandbox: test_card_<16 digits>)")
        number = match.group(1)
        return {
            "mId": "tvivarepublica",
            "customerKey": customer_key,
            "authenticatedAt": rfc3339(self._clock()),
            "method": "카드",
            "billingKey": f"bk_sbx_{number}_{_customer_digest(customer_key)}_{secrets.token_hex(6)}",
            "card": {"number": mask(number), "cardType": "신용", "ownerType": "개인"} | _ISSUER,
        }

    def _charge(
        self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str, base_url: str
    ) -> dict[str, Any]:
        if amount <= 0:
            raise TossError(400, "INVALID_REQUEST", "결제 금액은 0보다 커야 합니다.")
        if order_id in self._book.orders:
            raise TossError(400, "DUPLICATED_ORDER_ID", "이미 승인 및 취소가 진행된 중복된 주문번호 입니다.")
        outcome = self._outcomes.get(billing_key)
        if outcome in OUTCOME_ONCE:
            self._outcomes[billing_key] = "SUCCEED"
            raise TossError.of(OUTCOME_ONCE[outcome])
        match = _BILLING_KEY.fullmatch(billing_key)
        card_number = match.group(1) if match else "0000000000000000"
        order = Order(_payment_key(), order_id, order_name, amount, card_number, self._clock(), customer_key)
        if not match:
            decline = _NOT_FOUND_BILLING_KEY
        elif match.group(2) != _customer_digest(customer_key):
            decline = (400, "NOT_MATCHES_CUSTOMER_KEY", "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.")
        elif outcome is not None:
            decline = OUTCOME_DECLINES.get(outcome)  # HOLD_IN_PROGRESS: no decline either
        else:
            decline = TEST_CARD_DECLINES.get(card_number)
        self._book.add(order)
        if decline:
            # A declined order is remembered, so a lookup can settle it as failed.
            order.status = "ABORTED"
            order.failure = {"code": decline[1], "message": decline[2]}
            raise TossError.of(decline)
        if outcome == HOLD_IN_PROGRESS:
            order.status = "IN_PROGRESS"  # not charged yet: `complete_order` decides
        else:
            self._book.approve(order, self._clock(), base_url)
        return order.to_json()

    def _cancel(self, payment_key: str, reason: str, amount: int | None, idempotency_key: str | None) -> dict[str, Any]:
        if self.faults.refuse_refunds > 0:
            self.faults.refuse_refunds -= 1
            raise Unprocessed(*_REFUND_FAILED)
        payment = self._book.cancel(payment_key, reason, amount, self._clock(), idempotency_key)
        self.webhooks.status_changed(payment)
        return payment

    def _lookup(self, order_id: str) -> dict[str, Any]:
        order = self._book.orders.get(order_id)
        if order is None:
            raise TossError.of(NOT_FOUND_PAYMENT)
        return order.to_json()
