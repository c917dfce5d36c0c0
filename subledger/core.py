"""The service without its HTTP face: the ledger, gateways, clock, read models, jobs and
the services a resolver or a job is handed, wired from settings.

`build_core(settings)` is what the worker, the projector, `audit reconcile` and the charge
processes start; `subledger/app.py` (the composition root of `serve`) adds the HTTP app on
top. Nothing here imports Strawberry, graphql-core or the schema: a process that serves no
GraphQL does not pay for them: 0.5–1.0 s less CPU per start of the worker or `audit
reconcile` here (docs/performance.md, Processes that serve no GraphQL).
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.payments.flows import Billing
from domain.payments.reconcile import Reconciler, Report
from domain.ledger import Ledger
from domain.ports import PaymentGateway
from domain.subscription_billing import SubscriptionBilling
from domain.webhooks import RetryPolicy
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
from projections.webhook_deliveries import WebhookDeliveries
from schema.services import Services
from subledger.clocks import SystemClock, TestClock
from subledger.gateway_setup import build_gateways
from subledger.metrics import count_charges
from subledger.metrics_port import DatabaseGauges
from subledger.read_side import open_read_side
from subledger.settings import Settings
from subledger.webhook_endpoints import WebhookEndpoints
from workers.charge_processes import ChargeProcesses
from workers.jobs import JobContext, Jobs
from workers.notifications import sender_for
from workers.run_records import RunRecords
from workers.webhooks import WebhookDispatcher


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
    #: The Starlette app (`subledger/app.py`); None in a process that serves no GraphQL.
    http: Any = None
    background: list[Any] = field(default_factory=list)
    read_models: Any = None
    #: The one thread that follows the log into every read model (`start_projections`).
    follower: LogFollower | None = None
    #: OpenTelemetry (subledger/tracing.py) when SUBLEDGER_OTLP_ENDPOINT is set.
    tracing: Any = None

    def catch_up(self) -> None:
        """Every read model up to the ledger's head now (raises what fails)."""
        assert self.follower is not None, "set by build_core()"
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
        assert self.follower is not None, "set by build_core()"
        self.follower.start()

    def stop_projections(self) -> None:
        if self.follower is not None:  # aclose() of a half-built app
            self.follower.stop()

    async def aclose(self) -> None:
        self.stop_projections()
        for gateway in self.gateways.values():
            await gateway.aclose()
        if self.services.rate_limiter is not None:  # the HTTP app's (subledger/app.py)
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


def build_core(settings: Settings, *, sandbox: SandboxEngine | None = None) -> Built:
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
    history = BoundQueries(
        projections["wallet_history"], view_db, ("history", "users_with_expired_lots", "lots_expiring_between")
    )
    payments = PaymentsQueries(view_db)
    subscriptions = BoundQueries(projections["subscriptions"], view_db, subscription_view.QUERIES)
    notifications = BoundQueries(projections["notifications"], view_db, outbox.QUERIES)
    subscription_billing = SubscriptionBilling(billing)
    follower = LogFollower(ledger, runners)
    ledger.listeners.append(lambda _recordings: follower.notify())
    ledger.listeners.append(count_charges)

    def catch_up() -> None:
        follower.catch_up(strict=True)

    webhooks = build_webhooks(
        settings, view_db, BoundQueries(projections["webhook_events"], view_db, ("after",)).after, run_sync
    )
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
        read_models=side.read_models,
        analytics=BoundQueries(projections["analytics"], view_db, ANALYTICS_QUERIES),
        webhooks=webhooks,
        timezone=settings.timezone,
    )
    services.extra["refresh_metrics"] = DatabaseGauges(
        job_context.runs, payments, clock, timedelta(seconds=settings.settle_grace_seconds), lambda: status(runners)
    ).refresh
    built = Built(settings, ledger, billing, clock, view_db, runners, jobs, services, gateways, executor, sandbox)
    built.read_models = side.read_models
    built.follower = follower
    services.reconcile = built.reconcile
    start_traces(settings, built)
    return built


def start_traces(settings: Settings, built: Built) -> None:
    """Spans of ledger commands, gateway calls, jobs and projection batches, when SUBLEDGER_OTLP_ENDPOINT is set."""
    if not settings.otlp_endpoint:
        return
    from gateways.kakaopay import KakaoPayGateway
    from gateways.naverpay import NaverPayGateway
    from gateways.toss import TossGateway
    from subledger.tracing import start_tracing

    built.tracing = start_tracing(settings.otlp_endpoint, settings.otlp_service_name)
    built.ledger.tracer = built.jobs.tracer = built.tracing.tracer
    for gateway in built.gateways.values():
        if isinstance(gateway, (TossGateway, KakaoPayGateway, NaverPayGateway)):
            gateway.tracer = built.tracing.tracer
    for runner in built.runners:
        runner.tracer = built.tracing.tracer


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
