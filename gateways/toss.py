"""`PaymentGateway` over Toss Payments' billing API (httpx), also used for the
sandbox gateway, which speaks the same API.

Charges carry `Idempotency-Key: orderId`, so the in-call retries (tenacity; SPEC §3)
and any later repeat of the same order can never charge twice.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from domain.errors import SandboxOnly
from domain.ports import BillingKey, ChargeResult, ChargeStatus, DeclineCode, GatewayError, RefundResult
from gateways.sandbox_app import SandboxTransport
from gateways.sandbox_engine import SandboxEngine

logger = logging.getLogger(__name__)

#: SPEC §5: Toss error codes → DeclineCode; any other code is OTHER, 5xx (and 429) PROVIDER_ERROR.
DECLINE_CODES = {
    "REJECT_CARD_PAYMENT": DeclineCode.INSUFFICIENT_FUNDS,
    "EXCEED_MAX_AMOUNT": DeclineCode.LIMIT_EXCEEDED,
    "EXCEED_MAX_ONE_DAY_AMOUNT": DeclineCode.LIMIT_EXCEEDED,
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": DeclineCode.LIMIT_EXCEEDED,
    "INVALID_STOPPED_CARD": DeclineCode.CARD_SUSPENDED,
    "INVALID_REJECT_CARD": DeclineCode.CARD_SUSPENDED,
    "NOT_FOUND_BILLING_KEY": DeclineCode.INVALID_BILLING_KEY,
    "INVALID_BILLING_KEY": DeclineCode.INVALID_BILLING_KEY,
    "PROVIDER_ERROR": DeclineCode.PROVIDER_ERROR,
}

#: In-call retries after the first try (SPEC §3), waiting base × 1, 2, 4.
RETRIES = 3
_KST = timezone(timedelta(hours=9))
# Errors raised before any byte of the request left: the provider cannot have acted.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_APPROVED = frozenset({"DONE", "PARTIAL_CANCELED", "CANCELED"})
_FAILED = frozenset({"ABORTED", "EXPIRED"})


def decline_code_for(provider_code: str | None, http_status: int = 400) -> DeclineCode:
    if http_status >= 500 or http_status == 429:
        return DeclineCode.PROVIDER_ERROR
    return DECLINE_CODES.get(provider_code or "", DeclineCode.OTHER)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _in_flight_elsewhere(response: httpx.Response) -> bool:
    # Toss answers 409 while an earlier request with the same Idempotency-Key is still
    # being processed: that one may yet charge, so this is neither success nor decline.
    return response.status_code == 409 and _body(response).get("code") == "IDEMPOTENT_REQUEST_PROCESSING"


def _transient(response: httpx.Response) -> bool:
    return response.status_code >= 500 or response.status_code == 429 or _in_flight_elsewhere(response)


@dataclass(frozen=True)
class _Exchange:
    """What the retried calls to one endpoint came to."""

    response: httpx.Response | None  # the last HTTP answer, if the last try got one
    ambiguous: bool  # some try may have been processed without us hearing the outcome
    error: str  # the last transport error, for messages

    @property
    def settled(self) -> bool:
        """The provider gave a definite answer (success or a decline)."""
        return self.response is not None and not _transient(self.response)

    @property
    def succeeded(self) -> bool:
        return self.settled and self.response is not None and self.response.status_code == 200

    def body(self) -> dict[str, Any]:
        return _body(self.response) if self.response is not None else {}

    def error_of(self) -> tuple[str | None, str]:
        if self.response is None:
            return None, self.error
        body = self.body()
        return body.get("code"), body.get("message") or f"HTTP {self.response.status_code}"

    def failure(self) -> GatewayError:
        code, message = self.error_of()
        if self.response is None:
            return GatewayError(DeclineCode.NETWORK_ERROR, None, message)
        return GatewayError(decline_code_for(code, self.response.status_code), code, message)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    # Toss always sends an offset; a bare time would be Korean local time.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_KST)


def _payment_result(order_id: str, payment: dict[str, Any]) -> ChargeResult:
    """A Toss Payment object as the port's outcome of the order."""
    status = payment.get("status")
    if status in _APPROVED:
        return ChargeResult(
            ChargeStatus.APPROVED,
            order_id,
            payment_key=payment.get("paymentKey"),
            amount=payment.get("totalAmount"),
            approved_at=_parse_time(payment.get("approvedAt")),
        )
    if status in _FAILED:
        failure = payment.get("failure") or {}
        code = failure.get("code")
        return ChargeResult(
            ChargeStatus.DECLINED,
            order_id,
            decline_code=decline_code_for(code),
            provider_code=code,
            message=failure.get("message"),
        )
    # IN_PROGRESS and the like: not settled yet, so neither charged nor failed for us.
    payment_key = payment.get("paymentKey")
    return ChargeResult(ChargeStatus.UNKNOWN, order_id, payment_key=payment_key, message=f"status {status}")


class TossGateway:
    def __init__(
        self,
        base_url: str,
        secret_key: str,
        provider: str = "TOSS",
        transport: httpx.AsyncBaseTransport | None = None,
        retry_base_seconds: float = 1.0,
        timeout: float = 10.0,
        sandbox: bool = False,
    ) -> None:
        self.provider = provider
        self._sandbox = sandbox
        self._retry_base_seconds = retry_base_seconds
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.BasicAuth(secret_key, ""),  # Toss: base64("<secret>:")
            transport=transport,
            timeout=timeout,
        )

    async def issue_billing_key(self, auth_key: str, customer_key: str) -> BillingKey:
        exchange = await self._exchange(
            "issue_billing_key",
            "POST",
            "/v1/billing/authorizations/issue",
            {"authKey": auth_key, "customerKey": customer_key},
            # One key per call, so its own retries cannot issue a second billing key.
            idempotency_key=f"issue-{uuid.uuid4()}",
        )
        if not exchange.succeeded:
            raise exchange.failure()
        body = exchange.body()
        return BillingKey(billing_key=body["billingKey"], card_masked=(body.get("card") or {}).get("number"))

    async def charge(
        self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str
    ) -> ChargeResult:
        exchange = await self._exchange(
            "charge",
            "POST",
            f"/v1/billing/{quote(billing_key, safe='')}",
            {"customerKey": customer_key, "amount": amount, "orderId": order_id, "orderName": order_name},
            idempotency_key=order_id,
        )
        if exchange.succeeded:
            return _payment_result(order_id, exchange.body())
        code, message = exchange.error_of()
        status = ChargeStatus.DECLINED
        if exchange.ambiguous and not exchange.settled:
            # The card may have been charged: the caller must look the order up.
            status, decline = ChargeStatus.UNKNOWN, DeclineCode.NETWORK_ERROR
        elif exchange.response is not None:
            decline = decline_code_for(code, exchange.response.status_code)  # incl. 5xx/429 to the last retry
        else:
            decline = DeclineCode.NETWORK_ERROR  # never reached the provider
        return ChargeResult(status, order_id, decline_code=decline, provider_code=code, message=message)

    async def refund(self, payment_key: str, amount: int, reason: str, idempotency_key: str) -> RefundResult:
        exchange = await self._exchange(
            "refund",
            "POST",
            f"/v1/payments/{quote(payment_key, safe='')}/cancel",
            {"cancelReason": reason, "cancelAmount": amount},
            idempotency_key=idempotency_key,
        )
        if exchange.succeeded:
            # The last cancel is this request's (also when the answer is a replay).
            cancels = exchange.body().get("cancels") or [{"cancelAmount": amount}]
            return RefundResult(ok=True, refunded_amount=cancels[-1]["cancelAmount"])
        code, message = exchange.error_of()
        if exchange.ambiguous and not exchange.settled:
            message = f"refund outcome unknown, repeat with the same idempotency key: {message}"
        return RefundResult(ok=False, provider_code=code, message=message)

    async def lookup_order(self, order_id: str) -> ChargeResult | None:
        exchange = await self._exchange("lookup_order", "GET", f"/v1/payments/orders/{quote(order_id, safe='')}")
        code, message = exchange.error_of()
        if not exchange.settled:
            raise GatewayError(DeclineCode.NETWORK_ERROR, code, f"order lookup impossible: {message}")
        if exchange.succeeded:
            return _payment_result(order_id, exchange.body())
        if code == "NOT_FOUND_PAYMENT":
            return None
        raise exchange.failure()

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        if not self._sandbox:
            raise SandboxOnly(f"setSandboxOutcome needs the sandbox gateway, not {self.provider}")
        path = f"/sandbox/billing/{quote(billing_key, safe='')}/outcome"
        exchange = await self._exchange("set_sandbox_outcome", "POST", path, {"outcome": outcome})
        if not exchange.succeeded:
            raise exchange.failure()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _exchange(
        self,
        operation: str,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> _Exchange:
        """Send, retrying transient failures under the same Idempotency-Key.
        `operation` names the call in logs: paths may hold billing keys, which never go to logs."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        ambiguous = False
        last_error = ""

        async def attempt() -> httpx.Response:
            nonlocal ambiguous, last_error
            try:
                response = await self._client.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                ambiguous = ambiguous or not isinstance(exc, _NEVER_SENT)
                last_error = f"{type(exc).__name__}: {exc}"
                raise
            ambiguous = ambiguous or _in_flight_elsewhere(response)
            return response

        def log_retry(state: RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            failed = state.outcome.exception() or f"HTTP {state.outcome.result().status_code}"
            logger.warning(
                "gateway_retry provider=%s operation=%s idempotency_key=%s attempt=%d wait_s=%.2f error=%r",
                self.provider, operation, idempotency_key, state.attempt_number, state.next_action.sleep, str(failed),
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + RETRIES),
            wait=wait_exponential(multiplier=self._retry_base_seconds, exp_base=2),
            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_transient),
            before_sleep=log_retry,
            # Out of retries: hand back the last answer (or raise its transport error).
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response = await retrying(attempt)
        except httpx.TransportError:
            return _Exchange(None, ambiguous, last_error)
        return _Exchange(response, ambiguous, last_error)


def in_process_sandbox(engine: SandboxEngine | None = None, retry_base_seconds: float = 1.0) -> TossGateway:
    """The SANDBOX provider without a server: the sandbox app runs inside this process."""
    return TossGateway(
        "http://sandbox.local",
        "test_sk_sandbox",
        provider="SANDBOX",
        transport=SandboxTransport(engine or SandboxEngine()),
        retry_base_seconds=retry_base_seconds,
        sandbox=True,
    )
