"""The composition root: the only module that knows every piece.

`build(settings)` wires the ledger, gateways, clock, read models and jobs
(`subledger/core.py`, which the processes that serve no GraphQL start alone) and the
HTTP app on top of them; tests call it with their own settings (and may hand in a
sandbox engine to inject faults), the CLI calls it for `serve`.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from gateways.sandbox_engine import SandboxEngine
from projections.status import status
from schema.app import build_http_app
from schema.contacts import ContactRecorder
from schema.rate_limit import MoneyRateLimiter
from subledger.console import console_routes, graphiql_html
from subledger.core import Built, build_core
from subledger.http_parts import cors_policy, http_tracing, webhook_routes
from subledger.identity import identity_provider
from subledger.settings import Settings
from workers.notifications import follow_outbox
from workers.scheduler import InProcessScheduler
from workers.webhooks import follow_webhooks

__all__ = ["Built", "build"]


def build(settings: Settings, *, sandbox: SandboxEngine | None = None) -> Built:
    built = build_core(settings, sandbox=sandbox)
    settings, services, jobs, runners = built.settings, built.services, built.jobs, built.runners
    # What only requests use: the money rate limit, the identity provider's tokens, contact details.
    services.rate_limiter = MoneyRateLimiter(
        settings.rate_limit, settings.rate_limit_admin, settings.redis_url, webhook_limit=settings.rate_limit_webhook
    )
    services.tokens = identity_provider(settings)
    services.contacts = ContactRecorder(built.ledger, built.clock, services.run_sync)
    served_schema, traced = http_tracing(built.tracing)

    def ready() -> list[str]:
        return [
            f"projection {row['name']} lags {row['lag']} events"
            for row in status(runners)
            if row["lag"] > settings.ready_max_lag
        ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if settings.projections_in_process:
            built.start_projections()
        scheduler = None
        if not settings.redis_url and settings.clock == "system":
            scheduler = InProcessScheduler(jobs, built.clock, settings.tz)
            scheduler.start()
        # The outbox is sent within seconds here; the daily runs also send what is left.
        outbox_task = asyncio.create_task(follow_outbox(jobs.ctx, built.clock), name="subledger-outbox")
        webhook_task = asyncio.create_task(
            follow_webhooks(services.webhooks, built.clock, settings.webhook_poll_seconds), name="subledger-webhooks"
        )
        try:
            yield
        finally:
            for task in (outbox_task, webhook_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if scheduler is not None:
                await scheduler.stop()
            await built.aclose()

    built.http = build_http_app(
        services,
        served_schema,
        cron_secret=settings.cron_secret,
        cron_endpoint=settings.cron_endpoint,
        ready=ready,
        graphiql=settings.env != "production",
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        cors=cors_policy(settings),
        extra_routes=[*webhook_routes(built), *console_routes()],
        traced=traced,
        graphiql_html=graphiql_html(),
    )
    return built
