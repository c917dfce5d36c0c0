"""`PaymentGateway` over Toss Payments' billing API (httpx), also used for the
sandbox gateway, which speaks the same API.

Charges carry `Idempotency-Key: orderId`, so the in-call retries (tenacity; SPEC §3)
and any later repeat of the same order can never charge twice.

`list_transactions` pages through Toss' `GET /v1/transactions` (cursor
`startingAfter` = the last item's transactionKey); its objects and dates, with their
source, are described in `toss_objects.py`.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
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
from domain.tracing import NO_TRACER, Tracer
from domain.ports import (
    BillingKey,
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    GatewayError,
    GatewayTransaction,
    RefundResult,
    RefundStatus,
)
from gateways.default_transport import network_transport
from gateways.sandbox_app import SandboxTransport
from gateways.sandbox_engine import BASE_URL as SANDBOX_BASE_URL, SandboxEngine
from gateways.careful_post import NEVER_SENT  # the one list, for every provider: every other error leaves the outcome unknown
from gateways.toss_exchange import Exchange, in_flight_elsewhere, transient_answer
from gateways.toss_objects import decline_code_for, listing_range, payment_result, transaction

__all__ = ["RETRIES", "TossGateway", "decline_code_for", "in_process_sandbox"]

logger = logging.getLogger(__name__)

#: In-call retries after the first try (SPEC §3), waiting base × 1, 2, 4.
RETRIES = 3
#: Items per page of the transaction listing (Toss' `limit`).
TRANSACTIONS_PAGE = 5000


#: Connections a gateway client may hold open at once (all kept alive).
MAX_CONNECTIONS = 128


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
        auth: httpx.Auth | None = None,
    ) -> None:
        """`auth`: how requests authenticate (default Toss' Basic auth with `secret_key`)."""
        self.provider = provider
        self.transactions_page = TRANSACTIONS_PAGE
        #: Never kept from a provider's answer, e.g. inside a receipt URL (`toss_objects.receipt_url`).
        self._withheld = (secret_key,)
        self._sandbox = sandbox
        self._retry_base_seconds = retry_base_seconds
        # httpx's API over aiohttp's pool (gateways/aiohttp_transport.py): httpcore's own pool cost
        # about three times the CPU per request at 64 in flight
        # (docs/performance.md, "The gateway clients' transport").
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=auth or httpx.BasicAuth(secret_key, ""),  # Toss: base64("<secret>:")
            transport=transport or network_transport(max_connections=MAX_CONNECTIONS),
            timeout=timeout,
        )
        #: A span per call and per HTTP try (`gateway.call`, `gateway.http`): named by operation, never by path.
        self.tracer: Tracer = NO_TRACER

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
            return payment_result(order_id, exchange.body(), (*self._withheld, billing_key))
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
            return RefundResult(RefundStatus.DONE, refunded_amount=cancels[-1]["cancelAmount"])
        code, message = exchange.error_of()
        # Unsettled (409 in flight, or 5xx/429 to the last retry, or no answer at all) is
        # UNKNOWN only when some try may have been processed unheard (`ambiguous`: an
        # answer lost after sending, or a 409 for an earlier try still running). Toss
        # keeps no answer it did not process, so a 5xx/429 on every try, or a connection
        # that never opened, processed nothing: REFUSED, and the same key may be reused.
        if exchange.ambiguous and not exchange.settled:
            message = f"refund outcome unknown, repeat with the same idempotency key: {message}"
            return RefundResult(RefundStatus.UNKNOWN, provider_code=code, message=message)
        return RefundResult(RefundStatus.REFUSED, provider_code=code, message=message)

    async def lookup_order(self, order_id: str) -> ChargeResult | None:
        exchange = await self._exchange("lookup_order", "GET", f"/v1/payments/orders/{quote(order_id, safe='')}")
        code, message = exchange.error_of()
        if not exchange.settled:
            raise GatewayError(DeclineCode.NETWORK_ERROR, code, f"order lookup impossible: {message}")
        if exchange.succeeded:
            return payment_result(order_id, exchange.body(), self._withheld)
        if code == "NOT_FOUND_PAYMENT":
            return None
        raise exchange.failure()

    async def lookup_payment(self, payment_key: str) -> ChargeResult | None:
        """Toss' `GET /v1/payments/{paymentKey}`: the payment a notification names, as the
        provider holds it; None when it has no such payment (404 NOT_FOUND_PAYMENT)."""
        exchange = await self._exchange("lookup_payment", "GET", f"/v1/payments/{quote(payment_key, safe='')}")
        code, message = exchange.error_of()
        if not exchange.settled:
            raise GatewayError(DeclineCode.NETWORK_ERROR, code, f"payment lookup impossible: {message}")
        if exchange.succeeded:
            body = exchange.body()
            if not isinstance(body.get("orderId"), str) or body.get("paymentKey") != payment_key:
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "payment lookup answered another payment")
            return payment_result(body["orderId"], body)
        if exchange.response is not None and exchange.response.status_code == 404:
            return None  # NOT_FOUND_PAYMENT (or any other 404): no such payment here
        raise exchange.failure()

    async def list_transactions(self, since: datetime, until: datetime) -> list[GatewayTransaction]:
        start_date, end_date = listing_range(since, until)
        params = {"startDate": start_date, "endDate": end_date, "limit": str(self.transactions_page)}
        found: list[GatewayTransaction] = []
        while True:
            exchange = await self._exchange("list_transactions", "GET", "/v1/transactions", params=params)
            code, message = exchange.error_of()
            if not exchange.settled:
                raise GatewayError(DeclineCode.NETWORK_ERROR, code, f"transaction listing impossible: {message}")
            if not exchange.succeeded:
                raise exchange.failure()
            assert exchange.response is not None
            try:
                page = exchange.response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "transaction listing is not a JSON array")
            found.extend(transaction(item) for item in page)
            if len(page) < self.transactions_page:
                return found
            cursor = page[-1].get("transactionKey") if isinstance(page[-1], dict) else None
            if not cursor or cursor == params.get("startingAfter"):
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "transaction listing gave no next cursor")
            params["startingAfter"] = cursor

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        if not self._sandbox:
            raise SandboxOnly(f"setSandboxOutcome needs the sandbox gateway, not {self.provider}")
        path = f"/sandbox/billing/{quote(billing_key, safe='')}/outcome"
        exchange = await self._exchange("set_sandbox_outcome", "POST", path, {"outcome": outcome})
        if not exchange.succeeded:
            raise exchange.failure()

    def transient(self, response: httpx.Response) -> bool:
        """An answer worth retrying under the same key: 5xx, 429, or Toss' 409 in flight."""
        return transient_answer(response)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _exchange(
        self,
        operation: str,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Exchange:
        """Send, retrying transient failures under the same Idempotency-Key.
        `operation` names the call in logs and spans: paths may hold billing keys, which never go there."""
        with self.tracer.span("gateway.call", {"subledger.gateway.provider": self.provider,
                                               "subledger.gateway.operation": operation}) as span:
            exchange = await self._exchange_traced(operation, method, path, json, idempotency_key, params)
            span.set_attribute("subledger.gateway.settled", exchange.settled)
            if exchange.response is not None:
                span.set_attribute("http.response.status_code", exchange.response.status_code)
            return exchange

    async def _exchange_traced(
        self,
        operation: str,
        method: str,
        path: str,
        json: dict[str, Any] | None,
        idempotency_key: str | None,
        params: dict[str, str] | None,
    ) -> Exchange:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        ambiguous = False
        last_error = ""
        tries = 0

        async def attempt() -> httpx.Response:
            nonlocal ambiguous, last_error, tries
            tries += 1
            with self.tracer.span("gateway.http", {"http.request.method": method, "subledger.gateway.try": tries}) as span:
                try:
                    response = await self._client.request(method, path, json=json, headers=headers, params=params)
                except httpx.TransportError as exc:
                    ambiguous = ambiguous or not isinstance(exc, NEVER_SENT)
                    last_error = f"{type(exc).__name__}: {exc}"
                    span.set_attribute("error.type", type(exc).__name__)
                    raise
                span.set_attribute("http.response.status_code", response.status_code)
            ambiguous = ambiguous or in_flight_elsewhere(response)
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
            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(self.transient),
            before_sleep=log_retry,
            # Out of retries: hand back the last answer (or raise its transport error).
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response = await retrying(attempt)
        except httpx.TransportError:
            return Exchange(None, ambiguous, last_error, self.transient)
        return Exchange(response, ambiguous, last_error, self.transient)


def in_process_sandbox(engine: SandboxEngine | None = None, retry_base_seconds: float = 1.0) -> TossGateway:
    """The SANDBOX provider without a server: the sandbox app runs inside this process."""
    return TossGateway(
        SANDBOX_BASE_URL,
        "test_sk_sandbox",
        provider="SANDBOX",
        transport=SandboxTransport(engine or SandboxEngine()),
        retry_base_seconds=retry_base_seconds,
        sandbox=True,
    )
