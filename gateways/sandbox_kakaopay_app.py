"""The HTTP side of KakaoPay's look-alike (`sandbox_kakaopay`): its API paths, the payer's
approval page, and its controls, mounted by the sandbox gateway server (`sandbox_app`)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateways.sandbox_engine import Reply
from gateways.sandbox_kakaopay import DECLINES, ONCE, KakaoError, KakaoSandbox

Answer = Callable[[Reply], Response]


def kakaopay_routes(kakao: KakaoSandbox, answer: Answer) -> list[Route]:
    def api(scope: str, handler: Callable[[dict[str, Any], str], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                body = None
            kakao.requests.append({
                "method": request.method, "path": request.url.path,
                "authorization": request.headers.get("authorization"), "contentType": request.headers.get("content-type"),
                "body": body,
            })
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            if scheme != "SECRET_KEY" or not key.startswith("DEV"):
                return answer(KakaoError(-401, "유효하지 않은 Secret key 입니다.", status=401).reply())
            if not isinstance(body, dict):
                return answer(KakaoError(-726, "요청 본문이 JSON 객체가 아닙니다.").reply())
            return answer(await kakao.serve(scope, lambda: handler(body, str(request.base_url))))
        return endpoint

    async def pay(request: Request) -> Response:
        try:
            target = kakao.payer_visits(request.path_params["tid"], request.query_params.get("result", "approve"))
        except KakaoError as exc:
            return answer(exc.reply())
        return RedirectResponse(target, status_code=303)

    async def set_outcome(request: Request) -> Response:
        outcome = (await request.json()).get("outcome")
        if outcome not in DECLINES and outcome not in ONCE:
            return JSONResponse({"error_code": -726, "error_message": f"unknown outcome {outcome!r}"}, status_code=400)
        kakao.outcomes[request.path_params["sid"]] = outcome
        return JSONResponse({"sid": request.path_params["sid"], "outcome": outcome})

    def listing(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return JSONResponse({name: kakao.charges() if name == "charges" else list(getattr(kakao, name))})
        return endpoint

    return [
        Route("/online/v1/payment/ready", api("ready", kakao.ready), methods=["POST"]),
        Route("/online/v1/payment/approve", api("pay", lambda body, _: kakao.approve(body)), methods=["POST"]),
        Route("/online/v1/payment/subscription", api("pay", lambda body, _: kakao.subscription(body)), methods=["POST"]),
        Route("/online/v1/payment/cancel", api("cancel", lambda body, _: kakao.cancel(body)), methods=["POST"]),
        Route("/online/v1/payment/order", api("lookup", lambda body, _: kakao.order(body)), methods=["POST"]),
        Route("/sandbox/kakaopay/pay/{tid}", pay, methods=["GET"]),
        Route("/sandbox/kakaopay/sids/{sid}/outcome", set_outcome, methods=["POST"]),
        *(Route(f"/sandbox/kakaopay/{name}", listing(name), methods=["GET"]) for name in ("charges", "refunds", "requests")),
    ]
