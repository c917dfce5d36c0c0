"""The HTTP side of NaverPay's look-alike (`sandbox_naverpay`): its API paths under
`/{partnerId}/naverpay/payments/`, the payer's registration page, and its controls, mounted by
the sandbox gateway server (`sandbox_app`)."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateways.sandbox_engine import Reply
from gateways.sandbox_naverpay import DECLINES, ONCE, NaverError, NaverSandbox

Answer = Callable[[Reply], Response]
API = "/{partner}/naverpay/payments/"


def naverpay_routes(naver: NaverSandbox, answer: Answer) -> list[Route]:
    def api(scope: str, handler: Callable[[Any, Request], dict[str, Any]], form: bool = True,
            keyed: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = (await request.body()).decode("utf-8", "replace")
            body: Any = dict(parse_qsl(raw, keep_blank_values=True)) if form else _json(raw)
            headers = {name: request.headers.get(name) for name in (
                "x-naver-client-id", "x-naver-client-secret", "x-naverpay-chain-id", "x-naverpay-idempotency-key")}
            naver.requests.append({
                "method": request.method, "path": request.url.path, "query": request.url.query, "headers": headers,
                "contentType": request.headers.get("content-type"), "body": body,
            })
            if (not request.path_params["partner"].startswith("np_") or not headers["x-naver-client-id"]
                    or not (headers["x-naver-client-secret"] or "").startswith("test_") or not headers["x-naverpay-chain-id"]):
                return answer(NaverError("InvalidMerchant", "유효하지 않은 가맹점 인증 정보입니다.", status=401).reply())
            key = headers["x-naverpay-idempotency-key"] if keyed else None
            return answer(await naver.serve(scope, lambda: handler(body, request), key))
        return endpoint

    async def page(request: Request) -> Response:
        try:
            target = naver.payer_visits(request.path_params["reserve_id"], request.query_params.get("result", "approve"))
        except NaverError as exc:
            return answer(exc.reply())
        return RedirectResponse(target, status_code=303)

    async def set_outcome(request: Request) -> Response:
        outcome = (await request.json()).get("outcome")
        if outcome not in DECLINES and outcome not in ONCE:
            return JSONResponse({"code": "Fail", "message": f"unknown outcome {outcome!r}"}, status_code=400)
        naver.outcomes[request.path_params["recurrent_id"]] = outcome
        return JSONResponse({"recurrentId": request.path_params["recurrent_id"], "outcome": outcome})

    async def cancels_later(request: Request) -> Response:
        count = (await request.json()).get("count", 1)
        if not isinstance(count, int) or count < 0:
            return JSONResponse({"code": "Fail", "message": "count: a whole number"}, status_code=400)
        naver.cancels_later = count
        return JSONResponse({"cancelsLater": count})

    async def complete_cancels(request: Request) -> Response:
        return JSONResponse({"completed": naver.complete_cancels()})

    def listing(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return JSONResponse({name: naver.charges() if name == "charges" else list(getattr(naver, name))})
        return endpoint

    return [
        Route(API + "recurrent/regist/v1/reserve", api("reserve", lambda f, _: naver.regist_reserve(f)), methods=["POST"]),
        Route(API + "recurrent/regist/v1/approval", api("approve", lambda f, _: naver.regist_approval(f)), methods=["POST"]),
        Route(API + "recurrent/pay/v3/reserve", api("reserve", lambda f, _: naver.pay_reserve(f)), methods=["POST"]),
        Route(API + "recurrent/pay/v3/approval", api("pay", lambda f, _: naver.pay_approval(f), keyed=True), methods=["POST"]),
        Route(API + "v1/cancel", api("cancel", lambda f, _: naver.cancel(f), keyed=True), methods=["POST"]),
        Route(API + "v2.3/list/history/{payment_id}",
              api("lookup", lambda _, r: naver.history_of(r.path_params["payment_id"]), form=False), methods=["POST"]),
        Route(API + "v2.3/list/history", api("lookup", lambda q, _: naver.history(q), form=False), methods=["POST"]),
        Route("/sandbox/naverpay/payments/{reserve_id}", page, methods=["GET"]),
        Route("/sandbox/naverpay/recurrents/{recurrent_id}/outcome", set_outcome, methods=["POST"]),
        Route("/sandbox/naverpay/cancels-later", cancels_later, methods=["POST"]),
        Route("/sandbox/naverpay/complete-cancels", complete_cancels, methods=["POST"]),
        *(Route(f"/sandbox/naverpay/{name}", listing(name), methods=["GET"]) for name in ("charges", "refunds", "requests")),
    ]


def _json(raw: str) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return raw  # kept as received; the operation refuses it
