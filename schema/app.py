"""The HTTP surface: /graphql, /healthz, /readyz, POST /cron/run, behind a body-size limit,
each request with its id and access line (schema/request_ids.py)."""
from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

import structlog
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from domain.errors import DomainError
from schema.cors import CorsPolicy
from schema.context import Context, Services
from schema.errors import format_error, request_error
from schema.metrics import RequestMetrics, count_errors, metrics_endpoint
from schema.request_ids import RequestIds

log = structlog.get_logger("subledger.http")


class SubledgerGraphQL(GraphQL):
    """Strawberry's ASGI view, with the contract's error shape everywhere: errors are
    mapped by `schema.errors`, and requests strawberry refuses before execution
    (malformed JSON, no query) answer a GraphQL error body instead of plain text."""

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = JSONResponse(request_error(error.reason), status_code=error.status_code)
        await response(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> Context:
        context = Context(self.services, request.headers.get("authorization"), request=request, response=response)
        if self.services.tokens is not None:  # fetch the provider's key for a new kid off the event loop
            await self.services.tokens.prepare(context.authorization)
        if self.services.contacts is not None and context.authorization:
            try:
                caller = context.caller
            except DomainError:
                return context  # the resolvers that need a caller answer UNAUTHENTICATED
            await self.services.contacts.observe(caller)
        return context

    async def process_result(self, request: Any, result: ExecutionResult) -> dict[str, Any]:
        data: dict[str, Any] = {"data": result.data}
        if result.errors:
            data["errors"] = [format_error(error) for error in result.errors]
            count_errors([error["extensions"]["code"] for error in data["errors"]])
        return data


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` (413), by header or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(request_error(f"request body over {self.max_bytes} bytes"), status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def build_http_app(
    services: Services,
    schema: Any,
    *,
    cron_secret: str | None,
    ready: Callable[[], Any],
    graphiql: bool,
    max_body_bytes: int,
    lifespan: Any = None,
    extra_routes: list[Any] | None = None,
    cron_endpoint: bool = True,
    cors: CorsPolicy | None = None,
    traced: Callable[[ASGIApp], ASGIApp] | None = None,
) -> ASGIApp:
    graphql = SubledgerGraphQL(services, schema=schema, graphql_ide="graphiql" if graphiql else None)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            problems = await services.run_sync(ready)
        except Exception as error:  # the database is unreachable: not ready, and say why in the log
            log.warning("not_ready", error=repr(error))
            return JSONResponse({"status": "unavailable", "problems": ["database unreachable"]}, status_code=503)
        status = 503 if problems else 200
        return JSONResponse({"status": "ok" if not problems else "lagging", "problems": problems}, status_code=status)

    async def cron_run(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {cron_secret}" if cron_secret else None
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("cron_refused", client=request.client.host if request.client else None, configured=bool(cron_secret))
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        runs = await services.jobs.run_due(services.clock.now())
        return Response(json.dumps({"runs": runs}, default=str), media_type="application/json")

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *([Route("/cron/run", cron_run, methods=["POST"])] if cron_endpoint else []),
        Route("/metrics", metrics_endpoint(services.projections, services.run_sync, services.extra.get("refresh_metrics"))),
        *(extra_routes or []),
        Route("/graphql", graphql, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[cors.middleware()] if cors else None)
    inner = RequestMetrics(BodySizeLimit(app, max_body_bytes))
    # Tracing (when on) inside RequestIds: each request's root span carries its id (schema/tracing.py).
    return RequestIds(traced(inner) if traced else inner)
