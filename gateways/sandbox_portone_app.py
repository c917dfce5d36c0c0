"""The PortOne look-alike over HTTP, mounted in the sandbox gateway server (`sandbox_app`):
PortOne V2's paths, bodies and `{type, message}` errors (`Authorization: PortOne <secret>`,
any secret starting `test_portone_`), with the Toss look-alike's faults (`POST /sandbox/faults`
applies to both: refused connections, latency, error bursts, dropped answers, lookups down,
refused or dropped cancels), and controls under `/sandbox/portone/...`:

- `POST /sandbox/portone/billing-keys {cardNumber, customerId, storeId}`: issue a billing key, as
  PortOne's browser SDK would after the customer entered a card; answers `{billingKey}`.
- `POST /sandbox/portone/billing-keys/{billingKey}/outcome {outcome}`: later charges end so
  (the `SandboxOutcome` names).
- `GET /sandbox/portone/payments`: every payment as PortOne holds it (the money's other side).
- `GET /sandbox/portone/requests`: every API request received (method, path, query, headers, body).
- `POST /sandbox/portone/reset`.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateways.sandbox_app import _DroppedResponse, _field as checked_field
from gateways.sandbox_engine import SandboxEngine, TossError
from gateways.sandbox_portone import PortOneBook, PortOneError

SECRET_PREFIX = "test_portone_"
#: Headers a recorded request keeps (the rest are the HTTP client's own).
RECORDED_HEADERS = ("authorization", "content-type", "idempotency-key")

Operation = Callable[[Request, dict[str, Any]], Any]


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    """The Toss look-alike's field check, answered as PortOne's INVALID_REQUEST."""
    try:
        return checked_field(body, name, kind, required)
    except TossError as exc:
        raise PortOneError(exc.status, exc.code, exc.message) from None


def _json_response(status: int, body: Any, dropped: bool = False) -> Response:
    return (_DroppedResponse if dropped else JSONResponse)(body, status_code=status, media_type="application/json")


def portone_routes(engine: SandboxEngine, book: PortOneBook) -> list[Route]:
    def api(scope: str, drops: str | None = None) -> Callable[[Operation], Callable[[Request], Awaitable[Response]]]:
        """A PortOne endpoint: recorded, authenticated, faults applied, errors as {type, message}.
        `drops`: the Faults counter whose answers are cut off after processing."""

        def wrap(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                raw = await request.body()
                record = {
                    "method": request.method, "path": request.url.path, "query": dict(request.query_params),
                    "headers": {k: v for k, v in request.headers.items() if k in RECORDED_HEADERS},
                    "body": _parsed(raw),
                }
                book.requests.append(record)
                faults = engine.faults
                if faults.refuse or (scope == "lookup" and faults.lookups_down):
                    return _json_response(503, {"type": "SERVICE_UNAVAILABLE", "message": "sandbox gateway is down"})
                scheme, _, secret = request.headers.get("authorization", "").partition(" ")
                if scheme != "PortOne" or not secret.startswith(SECRET_PREFIX):
                    return _json_response(401, {"type": "UNAUTHORIZED", "message": "인증 정보가 올바르지 않습니다."})
                extra = faults.refund_latency_ms if scope == "cancel" else 0
                async with engine._admission(extra):
                    if faults.error_burst_count > 0:
                        faults.error_burst_count -= 1
                        status = faults.error_burst_status
                        return _json_response(status, {"type": "INTERNAL_SERVER_ERROR", "message": f"injected {status}"})
                    try:
                        body = _request_body(request, raw)
                        status, answer, processed = 200, operation(request, body), True
                    except PortOneError as exc:
                        status, answer, processed = exc.status, exc.body(), exc.processed
                dropped = bool(drops) and processed and getattr(faults, drops or "") > 0
                if dropped:
                    setattr(faults, drops or "", getattr(faults, drops or "") - 1)
                return _json_response(status, answer, dropped)

            return endpoint

        return wrap

    @api("charge", drops="drop_responses")
    def pay(request: Request, body: dict[str, Any]) -> Any:
        _field(body, "storeId", str), _field(body, "billingKey", str), _field(body, "orderName", str)
        amount = _field(body, "amount", dict)
        if _field(amount, "total", int) <= 0 or _field(body, "currency", str) != "KRW":
            raise PortOneError(400, "INVALID_REQUEST", "amount.total > 0, currency KRW 이어야 합니다.")
        _field(body, "customer", dict, required=False)
        return book.pay(request.path_params["payment_id"], body)

    @api("cancel", drops="drop_refund_responses")
    def cancel(request: Request, body: dict[str, Any]) -> Any:
        _field(body, "reason", str), _field(body, "storeId", str, required=False)
        _field(body, "amount", int, required=False), _field(body, "currentCancellableAmount", int, required=False)
        if engine.faults.refuse_refunds > 0:
            engine.faults.refuse_refunds -= 1
            raise PortOneError(502, "PG_PROVIDER", "PG사 오류", processed=False,
                               pgCode="FAILED_REFUND_PROCESS", pgMessage="환불요청에 실패했습니다.")
        return book.cancel(request.path_params["payment_id"], body)

    @api("lookup")
    def payment(request: Request, body: dict[str, Any]) -> Any:
        return book.payment(request.path_params["payment_id"], request.query_params.get("storeId")).to_json()

    @api("lookup")
    def billing_key(request: Request, body: dict[str, Any]) -> Any:
        return book.billing_key(request.path_params["billing_key"], request.query_params.get("storeId", ""))

    @api("listing")
    def listing(request: Request, body: dict[str, Any]) -> Any:
        return book.listing(body)

    async def issue(request: Request) -> Response:
        try:
            body = _request_body(request, await request.body())
            key = book.issue_billing_key(
                _field(body, "cardNumber", str), _field(body, "customerId", str), _field(body, "storeId", str)
            )
        except PortOneError as exc:
            return _json_response(exc.status, exc.body())
        return JSONResponse({"billingKey": key.billing_key})

    async def outcome(request: Request) -> Response:
        try:
            body = _request_body(request, await request.body())
            book.set_outcome(request.path_params["billing_key"], _field(body, "outcome", str))
        except PortOneError as exc:
            return _json_response(exc.status, exc.body())
        return JSONResponse({"ok": True})

    async def payments(request: Request) -> Response:
        return JSONResponse({"payments": [p.to_json() for p in book.payments.values()]})

    async def requests(request: Request) -> Response:
        return JSONResponse({"requests": book.requests})

    async def reset(request: Request) -> Response:
        book.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/payments/{payment_id}/billing-key", pay, methods=["POST"]),
        Route("/payments/{payment_id}/cancel", cancel, methods=["POST"]),
        Route("/payments/{payment_id}", payment, methods=["GET"]),
        Route("/billing-keys/{billing_key}", billing_key, methods=["GET"]),
        Route("/payments-by-cursor", listing, methods=["GET"]),
        Route("/sandbox/portone/billing-keys", issue, methods=["POST"]),
        Route("/sandbox/portone/billing-keys/{billing_key}/outcome", outcome, methods=["POST"]),
        Route("/sandbox/portone/payments", payments, methods=["GET"]),
        Route("/sandbox/portone/requests", requests, methods=["GET"]),
        Route("/sandbox/portone/reset", reset, methods=["POST"]),
    ]


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _request_body(request: Request, raw: bytes) -> dict[str, Any]:
    """The request's JSON object: its body, or for a GET its `requestBody` query parameter
    (PortOne takes a listing's input either way); a GET with neither has none."""
    text = raw.decode(errors="replace") if raw else None
    if request.method == "GET":
        text = text or request.query_params.get("requestBody")
        if not text:
            return {}
    try:
        body = json.loads(text or "")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PortOneError(400, "INVALID_REQUEST", "요청 본문이 JSON 객체가 아닙니다.")
    return body
