"""The HTTP app's optional parts, each present only when its settings ask for it: the
schema's tracing, the Toss webhook route and CORS (the service's own tracing and outgoing
webhooks are wired in `subledger/core.py`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from domain.payments.notices import NoticeHandler
from schema.build import schema
from schema.cors import CorsPolicy
from schema.toss_webhook import toss_webhook
from subledger.settings import Settings

if TYPE_CHECKING:
    from subledger.core import Built


def http_tracing(tracing: Any) -> tuple[Any, Any]:
    """The schema and the request-span middleware: the untraced schema without tracing."""
    if tracing is None:
        return schema, None
    from schema.build import build_schema
    from schema.tracing import TracedRequests, graphql_spans

    return build_schema((graphql_spans(tracing.provider),)), lambda app: TracedRequests(app, tracing.provider)


def webhook_routes(built: Built) -> list[Route]:
    """`POST /webhooks/toss` while Toss is an enabled provider (docs/payments.md#toss-webhook)."""
    if "TOSS" not in built.gateways:
        return []
    endpoint = toss_webhook(NoticeHandler(built.billing), built.clock.now, built.services.rate_limiter)
    return [Route("/webhooks/toss", endpoint, methods=["POST"])]


def cors_policy(settings: Settings) -> CorsPolicy | None:
    origins, methods, headers = settings.cors
    return CorsPolicy(origins, methods, headers, settings.cors_max_age) if origins else None
