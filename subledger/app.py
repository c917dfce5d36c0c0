"""The composition root: the only module that knows every piece.

`build(settings)` wires the ledger, gateways, clock, read models, jobs and the
HTTP app from settings; tests call it with their own settings (and may hand
in a sandbox engine to inject faults), the CLI calls it for `serve`.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.payments.flows import Billing
from domain.payments.reconcile import Reconciler, Report
from domain.ledger import Ledger
from domain.ports import PaymentGateway
from domain.subscription_billing import SubscriptionBilling
from gateways.sandbox_engine import SandboxEngine
from projections.bound import BoundQueries
from projections.database import ViewDatabase
from projections.follower import LogFollower
from projections import notifications as outbox
from projections import subscriptions as subscription_view
from projections.analytics import QUERIES as ANALYTICS_QUERIES
from projections.payments import PaymentsQueries
from projections.runner import ProjectionRunner
from projections.status import status
from projections.notification_deliveries import NotificationDeliveries
from schema.app import build_http_app
from schema.contacts import ContactRecorder
from schema.metrics import count_charges
from schema.rate_limit import MoneyRateLimiter
from schema.context import Services
from subledger.clocks import SystemClock, TestClock
from subledger.console import console_routes, graphiql_html
from subledger.identity import identity_provider
from subledger.metrics_port import DatabaseGauges
from subledger.gateway_setup import build_gateways
from subledger.http_parts import build_webhooks, cors_policy, http_tracing, start_traces, webhook_routes
from subledger.read_side import open_read_side
from subledger.settings import Settings
from workers.charge_processes import ChargeProcesses
from workers.jobs import JobContext, Jobs
from workers.notifications import follow_outbox, sender_for
from workers.run_records import RunRecords
from workers.scheduler import InProcessScheduler
from workers.webhooks import follow_webhooks

log = structlog.get_logger("subledger")


@dataclass
class Built:
    settings: Settings
    ledger: Ledger
    billing: Billing
    clock: Any
    view_db: ViewDatabase
    runners: list[ProjectionRunner]
    jobs: Jobs
    services: Services
    gateways: dict[str, PaymentGateway]
    executor: ThreadPoolExecutor
    sandbox: SandboxEngine | None
    http: Any = None
    background: list[Any] = field(default_factory=list)
    read_models: Any = None
    #: The one thread that follows the log into every read model (`start_projections`).
    follower: LogFollower | None = None
    #: OpenTelemetry (subledger/tracing.py) when SUBLEDGER_OTLP_ENDPOINT is set.
    tracing: Any = None

    def catch_up(self) -> None:
        """Every read model up to the ledger's head now (raises what fails)."""
        assert self.follower is not None, "set by build()"
        self.follower.catch_up(strict=True)

    async def reconcile(
        self, since: datetime | None = None, until: datetime | None = None, progress: Any = None
    ) -> Report:
        """Every payment requested in [since, until] against its gateway, and every order the
        gateways charged then against the ledger (`domain/payments/reconcile.py`)."""
        now = self.clock.now()
        # The gateways keep real time: on the test clock, their listing runs to the wall clock's now.
        listed_until = until or max(now, SystemClock().now())
        until = until or now
        run_sync = self.services.run_sync
        await run_sync(self.catch_up)
        ids = await run_sync(self.services.payments.payment_ids_between, since, until)
        if progress is not None:
            progress.total(len(ids))
        reconciler = Reconciler(self.gateways, lambda pay_id: run_sync(self.ledger.payment, pay_id))
        return await reconciler.run(
            ids, since, until, now, listed_until=listed_until, progress=progress.advance if progress else lambda _: None
        )

    def start_projections(self) -> None:
        assert self.follower is not None, "set by build()"
        self.follower.start()

    def stop_projections(self) -> None:
        if self.follower is not None:  # aclose() of a half-built app
            self.follower.stop()

    async def aclose(self) -> None:
        self.stop_projections()
        for gateway in self.gateways.values():
            await gateway.aclose()
        await self.services.rate_limiter.aclose()
        if self.services.webhooks is not None:
            await self.services.webhooks.aclose()
        self.executor.shutdown(wait=False)
        if self.read_models is not None:
            self.read_models.close()
        self.view_db.close()
        self.ledger.close()
        if self.tracing is not None:
            self.tracing.shutdown()


def build(settings: Settings, *, sandbox: SandboxEngine | None = None) -> Built:
    settings = settings.with_secrets()
    side = open_read_side(settings)
    ledger, view_db, projections, runners = side.ledger, side.view_db, side.projections, side.runners
    executor = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="ledger")

    async def run_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
        # In the caller's context: a command's log lines carry the request id (schema/request_ids.py).
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(executor, call)

    gateways, sandbox = build_gateways(settings, sandbox)
    billing = Billing(ledger, gateways, run_sync)
    clock = TestClock(ledger, settings.clock_start) if settings.clock == "test" else SystemClock()
    wallet_history = projections["wallet_history"]
    history = BoundQueries(wallet_history, view_db, ("history", "users_with_expired_lots", "lots_expiring_between"))
    payments = PaymentsQueries(view_db)
    subscriptions_projection = projections["subscriptions"]
    subscriptions = BoundQueries(subscriptions_projection, view_db, subscription_view.QUERIES)
    notifications_projection = projections["notifications"]
    notifications = BoundQueries(notifications_projection, view_db, outbox.QUERIES)
    subscription_billing = SubscriptionBilling(billing)
    analytics_projection = projections["analytics"]
    webhook_events = projections["webhook_events"]
    follower = LogFollower(ledger, runners)
    ledger.listeners.append(lambda _recordings: follower.notify())
    ledger.listeners.append(count_charges)

    def catch_up() -> None:
        follower.catch_up(strict=True)

    webhooks = build_webhooks(settings, view_db, BoundQueries(webhook_events, view_db, ("after",)).after, run_sync)
    job_context = JobContext(
        ledger=ledger,
        run_sync=run_sync,
        history=history,
        catch_up=catch_up,
        billing=billing,
        payments=payments,
        concurrency=settings.charge_concurrency,
        settle_grace=timedelta(seconds=settings.settle_grace_seconds),
        subscriptions=subscriptions,
        subscription_billing=subscription_billing,
        notifications=notifications,
        sender=sender_for(settings, view_db, clock),
        webhooks=webhooks,
        runs=RunRecords(view_db, create=False),
        charge_processes=ChargeProcesses(settings, settings.charge_processes) if settings.charge_processes > 1 else None,
    )
    jobs = Jobs(job_context, settings.tz, clock)
    read_models = side.read_models
    services = Services(
        ledger=ledger,
        billing=billing,
        clock=clock,
        run_sync=run_sync,
        jwt_secret=settings.jwt_secret or "",
        history=history,
        payments=payments,
        projections=lambda: status(runners),
        jobs=jobs,
        subscriptions=subscriptions,
        subscription_billing=subscription_billing,
        notifications=notifications,
        notification_sends=NotificationDeliveries(view_db),
        read_models=read_models,
        contacts=ContactRecorder(ledger, clock, run_sync),
        analytics=BoundQueries(analytics_projection, view_db, ANALYTICS_QUERIES),
        rate_limiter=MoneyRateLimiter(
            settings.rate_limit, settings.rate_limit_admin, settings.redis_url, webhook_limit=settings.rate_limit_webhook
        ),
        tokens=identity_provider(settings),
        webhooks=webhooks,
        timezone=settings.timezone,
    )
    services.extra["refresh_metrics"] = DatabaseGauges(
        job_context.runs, payments, clock, timedelta(seconds=settings.settle_grace_seconds), lambda: status(runners)
    ).refresh
    built = Built(settings, ledger, billing, clock, view_db, runners, jobs, services, gateways, executor, sandbox)
    built.read_models = read_models
    built.follower = follower
    services.reconcile = built.reconcile
    start_traces(settings, built)
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
            scheduler = InProcessScheduler(jobs, clock, settings.tz)
            scheduler.start()
        # The outbox is sent within seconds here; the daily runs also send what is left.
        outbox_task = asyncio.create_task(follow_outbox(job_context, clock), name="subledger-outbox")
        webhook_task = asyncio.create_task(
            follow_webhooks(webhooks, clock, settings.webhook_poll_seconds), name="subledger-webhooks"
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
