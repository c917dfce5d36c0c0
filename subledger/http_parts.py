"""The HTTP app's optional parts, each present only when its settings ask for it: tracing,
the Toss webhook route, outgoing webhooks and CORS."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from domain.payments.notices import NoticeHandler
from domain.webhooks import RetryPolicy
from gateways.kakaopay import KakaoPayGateway
from gateways.naverpay import NaverPayGateway
from gateways.toss import TossGateway
from projections.database import ViewDatabase
from projections.webhook_deliveries import WebhookDeliveries
from schema.build import schema
from schema.cors import CorsPolicy
from schema.toss_webhook import toss_webhook
from subledger.settings import Settings
from subledger.webhook_endpoints import WebhookEndpoints
from workers.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from subledger.app import Built


def start_traces(settings: Settings, built: Built) -> None:
    """Spans of ledger commands, gateway calls, jobs and projection batches, when SUBLEDGER_OTLP_ENDPOINT is set."""
    if not settings.otlp_endpoint:
        return
    from subledger.tracing import start_tracing

    built.tracing = start_tracing(settings.otlp_endpoint, settings.otlp_service_name)
    built.ledger.tracer = built.jobs.tracer = built.tracing.tracer
    for gateway in built.gateways.values():
        if isinstance(gateway, (TossGateway, KakaoPayGateway, NaverPayGateway)):
            gateway.tracer = built.tracing.tracer
    for runner in built.runners:
        runner.tracer = built.tracing.tracer


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


def build_webhooks(settings: Settings, view_db: ViewDatabase, events_after: Any, run_sync: Any) -> WebhookDispatcher:
    """Endpoints (secrets sealed by the master key; https only in production), deliveries, the sender."""
    policy = RetryPolicy(
        base=timedelta(seconds=settings.webhook_retry_base_seconds),
        cap=timedelta(seconds=settings.webhook_retry_cap_seconds),
        window=timedelta(seconds=settings.webhook_retry_window_seconds),
    )
    endpoints = WebhookEndpoints(view_db, settings.keyring, https_only=settings.env == "production", create=False)
    return WebhookDispatcher(endpoints, WebhookDeliveries(view_db, create=False), events_after, run_sync, policy=policy,
                             timeout=settings.webhook_timeout_seconds)


def cors_policy(settings: Settings) -> CorsPolicy | None:
    origins, methods, headers = settings.cors
    return CorsPolicy(origins, methods, headers, settings.cors_max_age) if origins else None
