"""The sandbox gateway over HTTP: Toss' billing API (same paths, JSON, Basic auth,
Idempotency-Key), the receipt pages its approvals link to (`sandbox_receipts`), plus
`/sandbox/...` controls, served in process through `SandboxTransport` or as its own
server with `run_sandbox_server`."""
from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateways.sandbox_engine import Faults, Reply, SandboxEngine, TossError
from gateways.sandbox_kakaopay import KakaoSandbox
from gateways.sandbox_kakaopay_app import kakaopay_routes
from gateways.sandbox_naverpay import NaverSandbox
from gateways.sandbox_naverpay_app import naverpay_routes
from gateways.sandbox_webhooks import webhook_routes
from gateways.sandbox_receipts import render_receipt


class ResponseDropped(Exception):
    """Raised after a dropped reply's first bytes went out: the server then cuts the
    connection, so the caller sees a protocol error, never a clean HTTP answer."""


class _DroppedResponse(JSONResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ResponseDropped("sandbox dropped the response after processing the request")


def _answer(reply: Reply) -> Response:
    response_class = _DroppedResponse if reply.dropped else JSONResponse
    return response_class(reply.body, status_code=reply.status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _authorized(request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        secret, _, _ = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secret.startswith("test_sk_")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TossError(400, "INVALID_REQUEST", "요청 본문이 JSON 객체가 아닙니다.")
    return body


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    # bool is an int in Python, but never a valid amount or count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TossError(400, "INVALID_REQUEST", f"{name}: {kind.__name__} 값이 필요합니다.")
    return value


def create_app(engine: SandboxEngine) -> Starlette:
    kakao = KakaoSandbox(engine)  # KakaoPay's look-alike, under the same faults
    naver = NaverSandbox(engine)  # NaverPay's, likewise

    def toss(handler: Callable[[Request, str | None], Awaitable[Reply]]) -> Callable[[Request], Awaitable[Response]]:
        """Toss endpoints: Basic auth with a test secret key, errors as {code, message}."""

        async def endpoint(request: Request) -> Response:
            if not _authorized(request):
                return _error(401, "UNAUTHORIZED_KEY", "인증되지 않은 시크릿 키 입니다.")
            try:
                return _answer(await handler(request, request.headers.get("idempotency-key")))
            except TossError as exc:
                return _error(exc.status, exc.code, exc.message)

        return endpoint

    @toss
    async def issue(request: Request, key: str | None) -> Reply:
        body = await _json_object(request)
        return await engine.issue_billing_key(_field(body, "authKey", str), _field(body, "customerKey", str), key)

    @toss
    async def charge(request: Request, key: str | None) -> Reply:
        body = await _json_object(request)
        return await engine.charge(
            request.path_params["billing_key"],
            _field(body, "customerKey", str),
            _field(body, "amount", int),
            _field(body, "orderId", str),
            _field(body, "orderName", str),
            key,
            base_url=str(request.base_url),
        )

    @toss
    async def cancel(request: Request, key: str | None) -> Reply:
        body = await _json_object(request)
        return await engine.cancel(
            request.path_params["payment_key"],
            _field(body, "cancelReason", str),
            _field(body, "cancelAmount", int, required=False),
            key,
        )

    @toss
    async def lookup(request: Request, key: str | None) -> Reply:
        return await engine.lookup_order(request.path_params["order_id"])

    @toss
    async def payment(request: Request, key: str | None) -> Reply:
        return await engine.lookup_payment(request.path_params["payment_key"])

    @toss
    async def transactions(request: Request, key: str | None) -> Reply:
        query = request.query_params
        if not query.get("startDate") or not query.get("endDate"):
            raise TossError(400, "INVALID_REQUEST", "startDate, endDate 값이 필요합니다.")
        limit = query.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit()):
            raise TossError(400, "INVALID_REQUEST", "limit: 숫자 값이 필요합니다.")
        return await engine.list_transactions(
            query["startDate"], query["endDate"], query.get("startingAfter"), int(limit) if limit else None
        )

    async def receipt(request: Request) -> Response:
        """An approved payment's receipt page: public, like the link Toss gives the payer."""
        try:
            order = engine.receipt(request.query_params.get("transactionId", ""))
        except TossError as exc:
            return _error(exc.status, exc.code, exc.message)
        return HTMLResponse(render_receipt(order))

    async def set_outcome(request: Request) -> Response:
        try:
            outcome = _field(await _json_object(request), "outcome", str)
            engine.set_outcome(request.path_params["billing_key"], outcome)
        except TossError as exc:
            return _error(exc.status, exc.code, exc.message)
        return JSONResponse({"billingKey": request.path_params["billing_key"], "outcome": outcome})

    async def complete(request: Request) -> Response:
        try:
            status = _field(await _json_object(request), "status", str)
            return JSONResponse(engine.complete_order(request.path_params["order_id"], status, str(request.base_url)))
        except TossError as exc:
            return _error(exc.status, exc.code, exc.message)

    async def dashboard_cancel(request: Request) -> Response:
        """A person cancels in the merchant's dashboard (no API key, no Idempotency-Key)."""
        try:
            body = await _json_object(request)
            reason = _field(body, "cancelReason", str, required=False) or "dashboard"
            amount = _field(body, "cancelAmount", int, required=False)
            return JSONResponse(engine.dashboard_cancel(request.path_params["payment_key"], amount, reason))
        except TossError as exc:
            return _error(exc.status, exc.code, exc.message)

    async def set_faults(request: Request) -> Response:
        try:
            faults = _faults(await _json_object(request))
        except TossError as exc:
            return _error(exc.status, exc.code, exc.message)
        engine.set_faults(faults)
        return JSONResponse({"ok": True})

    async def charges(request: Request) -> Response:
        return JSONResponse({"charges": engine.charges()})

    async def refunds(request: Request) -> Response:
        return JSONResponse({"refunds": engine.refunds()})

    async def reset(request: Request) -> Response:
        engine.reset()
        kakao.reset()
        naver.reset()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/billing/authorizations/issue", issue, methods=["POST"]),
            Route("/v1/billing/{billing_key}", charge, methods=["POST"]),
            Route("/v1/payments/{payment_key}/cancel", cancel, methods=["POST"]),
            Route("/v1/payments/orders/{order_id}", lookup, methods=["GET"]),
            Route("/v1/payments/{payment_key}", payment, methods=["GET"]),
            Route("/v1/transactions", transactions, methods=["GET"]),
            Route("/receipt/redirection", receipt, methods=["GET"]),
            Route("/sandbox/billing/{billing_key}/outcome", set_outcome, methods=["POST"]),
            Route("/sandbox/faults", set_faults, methods=["POST"]),
            Route("/sandbox/orders/{order_id}/complete", complete, methods=["POST"]),
            Route("/sandbox/charges", charges, methods=["GET"]),
            Route("/sandbox/refunds", refunds, methods=["GET"]),
            Route("/sandbox/reset", reset, methods=["POST"]),
            Route("/sandbox/dashboard/payments/{payment_key}/cancel", dashboard_cancel, methods=["POST"]),
            *webhook_routes(lambda: engine.webhooks),
            *kakaopay_routes(kakao, _answer),
            *naverpay_routes(naver, _answer),
            *_portone_routes(engine),
        ]
    )


def _portone_routes(engine: SandboxEngine) -> list[Route]:
    """The PortOne look-alike beside Toss' (`sandbox_portone_app`), sharing the engine's faults."""
    from gateways.sandbox_portone import PortOneBook
    from gateways.sandbox_portone_app import portone_routes  # it builds on this module

    return portone_routes(engine, PortOneBook())


def _faults(body: dict[str, Any]) -> Faults:
    burst = body.get("errorBurst") or {}
    if not isinstance(burst, dict):
        raise TossError(400, "INVALID_REQUEST", "errorBurst: {status, count} 객체가 필요합니다.")
    status = _field(burst, "status", int, required=False) or 500
    if status != 429 and not 500 <= status <= 599:
        raise TossError(400, "INVALID_REQUEST", "errorBurst.status: 429 또는 5xx 이어야 합니다.")
    return Faults(
        latency_ms=_count(body, "latencyMs"),
        error_burst_status=status,
        error_burst_count=_count(burst, "count"),
        drop_responses=_count(body, "dropResponses"),
        refuse=_field(body, "refuse", bool, required=False) or False,
        lookups_down=_field(body, "lookupsDown", bool, required=False) or False,
        max_concurrency=_count(body, "maxConcurrency") or None,  # 0 or absent: no cap
        refund_latency_ms=_count(body, "refundLatencyMs"),
        drop_refund_responses=_count(body, "dropRefundResponses"),
        refuse_refunds=_count(body, "refuseRefunds"),
    )


def _count(body: dict[str, Any], name: str) -> int:
    value = _field(body, name, int, required=False) or 0
    if value < 0:
        raise TossError(400, "INVALID_REQUEST", f"{name}: 0 이상이어야 합니다.")
    return value


class SandboxTransport(httpx.ASGITransport):
    """Talks to the sandbox app in process, with its faults shown as a real network
    would show them: refuse → ConnectError (nothing sent), drop → RemoteProtocolError."""

    def __init__(self, engine: SandboxEngine) -> None:
        super().__init__(app=create_app(engine))
        self.engine = engine

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.engine.faults.refuse:
            raise httpx.ConnectError("sandbox gateway refused the connection", request=request)
        try:
            return await super().handle_async_request(request)
        except ResponseDropped as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc


class _HideDroppedResponses(logging.Filter):
    """A dropped response is an injected fault, not a server bug: no traceback for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseDropped))


_HIDE_DROPPED = _HideDroppedResponses()


def sandbox_server(
    host: str, port: int, engine: SandboxEngine | None = None, webhook_url: str | None = None, **config: Any
) -> uvicorn.Server:
    """An unstarted uvicorn server for the sandbox app (tests run it in a thread)."""
    engine = engine or SandboxEngine(webhook_url=webhook_url)
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host=host, port=port, **config))
    # After Config: building it (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPPED)
    return server


def run_sandbox_server(host: str, port: int, webhook_url: str | None = None) -> None:
    sandbox_server(host, port, webhook_url=webhook_url).run()
