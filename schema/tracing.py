"""Spans of the HTTP surface, when tracing is on (`subledger/tracing.py`): one trace per request.

`TracedRequests` (ASGI, inside `RequestIds`) opens the request's root span, `POST /graphql`,
with the route, the status and the request id (`subledger.request_id`, as in `X-Request-ID`);
a caller's W3C `traceparent` makes it a child of the caller's trace. Probes and scrapes
(`/healthz`, `/readyz`, `/metrics`) get no span.

`GraphQLSpans` is Strawberry's OpenTelemetry extension made safe for a billing API: the
operation span (`GraphQL Query: <operationName>`) records neither the query text nor any
argument (either may hold an authKey, a billing key, an e-mail address), and only the
operation's top-level fields get a resolver span (`GraphQL Resolving: spendPoints`): a list
of a hundred items costs no hundred spans. A failing resolver's span names the error's type
and code (`error.type`, `subledger.error_code`), not its message. Ledger commands and gateway calls made by a
resolver are its children.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from inspect import isawaitable
from typing import Any

import structlog
from graphql import GraphQLResolveInfo
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import LifecycleStep
from strawberry.extensions.tracing import OpenTelemetryExtension
from strawberry.extensions.tracing.utils import should_skip_tracing

from schema.metrics import KNOWN_ROUTES
from schema.request_ids import PROBES
from subledger.tracing import SCOPE, mark_failed

REQUEST_ID = "subledger.request_id"
_PROPAGATOR = TraceContextTextMapPropagator()
#: The only headers read (W3C trace context); no other header value reaches a span.
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


class GraphQLSpans(OpenTelemetryExtension):
    def on_operation(self) -> Generator[None, None, None]:
        name = self.execution_context.operation_name
        span = self._tracer.start_span(f"GraphQL Query: {name}" if name else "GraphQL Query", kind=SpanKind.INTERNAL)
        self._span_holder[LifecycleStep.OPERATION] = span
        span.set_attribute("component", "graphql")
        rid = current_request_id()
        if rid:
            span.set_attribute(REQUEST_ID, rid)
        try:
            yield
        finally:
            named = self.execution_context.operation_name
            if not name and named:
                span.update_name(f"GraphQL Query: {named}")
            if named:
                span.set_attribute("graphql.operation.name", named)
            span.end()

    def add_tags(self, span: Any, info: GraphQLResolveInfo, kwargs: Any) -> None:
        span.set_attribute("component", "graphql")
        span.set_attribute("graphql.parentType", info.parent_type.name)
        span.set_attribute("graphql.path", info.field_name)

    async def resolve(self, _next: Callable, root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any) -> Any:
        # Strawberry's own resolve records a failing resolver's exception with its message
        # (which may repeat an input); here only its type and code, as every span of ours.
        if info.path.prev is not None or should_skip_tracing(_next, info):  # nested fields: no span of their own
            result = _next(root, info, *args, **kwargs)
            return await result if isawaitable(result) else result
        with self._tracer.start_as_current_span(
            f"GraphQL Resolving: {info.field_name}",
            context=trace.set_span_in_context(self._span_holder[LifecycleStep.OPERATION]),
            record_exception=False, set_status_on_exception=False,
        ) as span:
            self.add_tags(span, info, kwargs)
            try:
                result = _next(root, info, *args, **kwargs)
                return await result if isawaitable(result) else result
            except BaseException as error:
                mark_failed(span, error)
                raise


def graphql_spans(provider: TracerProvider) -> Callable[[], GraphQLSpans]:
    """The extension's factory, one instance per request (Strawberry's rule)."""
    return lambda: GraphQLSpans(tracer_provider=provider)


class TracedRequests:
    """ASGI middleware: the root span of every request but probes."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        self.app = app
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        carrier = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers") or []
            if key.lower() in _TRACE_HEADERS
        }
        attributes: dict[str, Any] = {"http.request.method": scope["method"], "http.route": route}
        rid = current_request_id()
        if rid:
            attributes[REQUEST_ID] = rid
        with self.tracer.start_as_current_span(
            f"{scope['method']} {route}", context=_PROPAGATOR.extract(carrier), kind=SpanKind.SERVER,
            attributes=attributes, record_exception=False, set_status_on_exception=False,
        ) as span:

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            except BaseException as error:
                mark_failed(span, error)
                raise
