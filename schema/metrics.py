"""Prometheus metrics of the API process, served at GET /metrics (SPEC §1); the metrics
themselves are defined in `subledger/metrics.py`, which every process imports:

- requests by route, method and status; GraphQL errors by contract code;
- command (mutation) latency by operation;
- projection position lag, read when scraped;
- charges by outcome, counted from the payment events this process records;
- job runs (defined in workers/jobs.py, where the jobs run);
- when the latest 00:00 and 09:00 runs completed, and PENDING payments older than the
  settle delay, read from the database when scraped (subledger/metrics_port.py).

The worker and projector serve the same registry on SUBLEDGER_METRICS_PORT, so every
name means the same thing wherever it is scraped. This module holds what only the API
runs: the request middleware, the mutation timer and the endpoint.

Metrics live in prometheus_client's process-wide registry; labels are bounded
(known routes, contract codes, schema field names) so series never explode.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import OperationType
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from subledger.metrics import COMMAND_SECONDS, GRAPHQL_ERRORS, PROJECTION_LAG, PROJECTION_POSITION, REQUESTS

KNOWN_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics", "/cron/run", "/webhooks/toss"})


class RequestMetrics:
    """Counts every HTTP answer by route (unknown paths share one label), method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        status = {"code": 500}

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            REQUESTS.labels(route, scope["method"], str(status["code"])).inc()


class CommandLatency(SchemaExtension):
    """Times each mutation, labelled with its (first) root field: the command it runs."""

    def on_execute(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        operation = _operation(context)
        if operation is not None and operation.operation == OperationType.MUTATION:
            fields = [s.name.value for s in operation.selection_set.selections if hasattr(s, "name")]
            COMMAND_SECONDS.labels(fields[0] if fields else "unknown").observe(time.perf_counter() - started)


def _operation(context: Any) -> Any:
    document = getattr(context, "graphql_document", None)
    if document is None:
        return None
    operations = [d for d in document.definitions if hasattr(d, "operation")]
    name = context.operation_name
    return next((o for o in operations if name is None or (o.name and o.name.value == name)), None)


def count_errors(codes: list[str]) -> None:
    for code in codes:
        GRAPHQL_ERRORS.labels(code).inc()


def metrics_endpoint(
    projection_status: Callable[[], list[dict[str, Any]]], run_sync: Any, refresh: Callable[[], None] | None = None
) -> Callable[[Request], Any]:
    async def metrics(_: Request) -> Response:
        try:
            rows = await run_sync(projection_status)
            if refresh is not None:
                await run_sync(refresh)
        except Exception:  # the database is away: still answer the other metrics
            rows = []
        for row in rows:
            PROJECTION_LAG.labels(row["name"]).set(row["lag"])
            PROJECTION_POSITION.labels(row["name"]).set(row["position"])
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return metrics
