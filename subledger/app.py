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
from starlette.routing import Route

from domain.payments.flows import Billing
from domain.payments.notices import NoticeHandler
from domain.catalog import load_catalog
from domain.payments.reconcile import Reconciler, Report
from domain.ledger import Ledger
from domain.ports import PaymentGateway
from domain.subscription_billing import SubscriptionBilling
from domain.webhooks import RetryPolicy
from gateways.sandbox_engine import SandboxEngine
from gateways.toss import TossGateway, in_process_sandbox
from gateways.portone import PortOneGateway
from gateways.kakaopay import KakaoPayGateway
from gateways.naverpay import NaverPayGateway
from projections.bound import BoundQueries
from projections.database import ViewDatabase
from projections import notifications as outbox
from projections import subscriptions as subscription_view
from projections.analytics import QUERIES as ANALYTICS_QUERIES
from projections.payments import PaymentsQueries
from projections.read_models import ReadModels
from projections.registry import read_models as registered_read_models
from projections.runner import ProjectionRunner
from projections.status import status
from projections.notification_deliveries import NotificationDeliveries
from projections.webhook_deliveries import WebhookDeliveries
from schema.app import build_http_app
from schema.build import schema
from schema.cors import CorsPolicy
from schema.contacts import ContactRecorder
from schema.metrics import count_charges
from schema.rate_limit import MoneyRateLimiter
from schema.toss_webhook import toss_webhook
from schema.context import Services
from subledger.clocks import SystemClock, TestClock
from subledger.console import console_routes, graphiql_html
from subledger.ledger_cipher import check_ledger_cipher
from subledger.identity import identity_provider
from subledger.metrics_port import DatabaseGauges
from subledger.migrate import Report as MigrationReport
from subledger.migrate import check_migrated, migrate
from subledger.settings import Settings, StartupRefused
from subledger.storage import Database
from subledger.user_keys import SqlUserKeys
from subledger.webhook_endpoints import WebhookEndpoints
from workers.jobs import JobContext, Jobs
from workers.notifications import follow_outbox, sender_for
from workers.run_records import RunRecords
from workers.scheduler import InProcessScheduler
from workers.webhooks import WebhookDispatcher, follow_webhooks

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
    #: OpenTelemetry (subledger/tracing.py) when SUBLEDGER_OTLP_ENDPOINT is set.
    tracing: Any = None

    def catch_up(self) -> None:
        for runner in self.runners:
            runner.catch_up()

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
        for runner in self.runners:
            runner.run_in_thread()

    def stop_projections(self) -> None:
        for runner in self.runners:
            runner.stop()

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


def ledger_env(settings: Settings, db: Database, create_tables: bool = True) -> dict[str, str]:
    env = db.ledger_env(pool_size=settings.db_pool_size)
    # eventsourcing creates its tables when the ledger opens unless told not to (subledger/migrate.py).
    env["CREATE_TABLE"] = "true" if create_tables else "false"
    # Cached aggregates are fast-forwarded from the database on every load, so several
    # processes stay correct; the cache only saves re-reading history.
    env["AGGREGATE_CACHE_MAXSIZE"] = "20000"
    if settings.cipher_key:
        env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
        env["CIPHER_KEY"] = settings.cipher_key
    return env


def build_gateways(settings: Settings, sandbox: SandboxEngine | None) -> tuple[dict[str, PaymentGateway], SandboxEngine | None]:
    gateways: dict[str, PaymentGateway] = {}
    retry = settings.gateway_retry_base_seconds
    if "sandbox" in settings.providers_named:
        if settings.sandbox_url:
            gateways["SANDBOX"] = TossGateway(
                settings.sandbox_url, "test_sk_sandbox", provider="SANDBOX", retry_base_seconds=retry, sandbox=True
            )
        else:
            sandbox = sandbox or SandboxEngine()
            gateways["SANDBOX"] = in_process_sandbox(sandbox, retry_base_seconds=retry)
    if "toss" in settings.providers_named:
        assert settings.toss_secret_key
        gateways["TOSS"] = TossGateway(
            settings.toss_base_url,
            settings.toss_secret_key,
            provider="TOSS",
            retry_base_seconds=retry,
        )
    if "portone" in settings.providers_named:
        assert settings.portone_api_secret and settings.portone_store_id
        gateways["PORTONE"] = PortOneGateway(
            settings.portone_base_url,
            settings.portone_api_secret.get_secret_value(),
            settings.portone_store_id,
            retry_base_seconds=retry,
        )
    if "kakaopay" in settings.providers_named:
        assert settings.kakao_secret_key
        gateways["KAKAO_PAY"] = KakaoPayGateway(
            settings.kakao_base_url, settings.kakao_secret_key.get_secret_value(), settings.kakao_cid,
            retry_base_seconds=retry, registration_amount=settings.kakao_registration_amount,
        )
    if "naverpay" in settings.providers_named:
        assert settings.naver_client_secret
        gateways["NAVER_PAY"] = NaverPayGateway(
            settings.naver_base_url, settings.naver_partner_id or "", settings.naver_client_id or "",
            settings.naver_client_secret.get_secret_value(), settings.naver_chain_id or "", settings.naver_page_url,
            retry_base_seconds=retry,
        )
    return gateways, sandbox


def open_ledger(settings: Settings, db: Database, view_db: ViewDatabase, *, create_tables: bool = True) -> Ledger:
    """The ledger, once its stored events fit SUBLEDGER_CIPHER_KEY and its per-user keys fit the
    master keys; else StartupRefused, in one line, rather than a MAC error at some later read
    (docs/keys.md). Closes the view database when it refuses."""
    user_keys = SqlUserKeys(view_db, settings.keyring, create=create_tables)
    env = ledger_env(settings, db, create_tables)
    ledger = Ledger(env=env, catalog=load_catalog(settings.catalog), tz=settings.tz, keys=user_keys)
    try:
        check_ledger_cipher(ledger.recorder, view_db, settings.cipher_key)
        user_keys.check()
    except StartupRefused:
        ledger.close()
        view_db.close()
        raise
    return ledger


def migrated_ledger(settings: Settings, db: Database, view_db: ViewDatabase, projections: list[Any]) -> Ledger:
    """The ledger of a migrated database: `subledger migrate` run here first when the process
    migrates at start (SUBLEDGER_MIGRATE_ON_START, development's default), else only checked:
    StartupRefused naming the command when this release cannot serve the database as it is."""
    if settings.migrates_on_start:
        ledger, _ = migrate(db, view_db, lambda create: open_ledger(settings, db, view_db, create_tables=create), projections)
        return ledger
    check_migrated(view_db, projections)
    return open_ledger(settings, db, view_db, create_tables=False)


def migrate_database(settings: Settings, *, grace_seconds: float | None = None) -> MigrationReport:
    """`subledger migrate` (subledger/migrate.py): `grace_seconds` set, the tables of a rebuilt read
    model's old version are dropped that long after the switch, before it returns."""
    db = Database.from_url(settings.database_url)
    view_db = ViewDatabase.open(db, pool_size=2)
    try:
        ledger, report = migrate(db, view_db, lambda create: open_ledger(settings, db, view_db, create_tables=create),
                                 list(registered_read_models().values()), grace_seconds=grace_seconds)
        ledger.close()
    finally:
        view_db.close()
    return report


def preflight(settings: Settings) -> None:
    """The startup checks of `build`, for processes that build later (the arq worker)."""
    db = Database.from_url(settings.database_url)
    view_db = ViewDatabase.open(db, pool_size=2)
    migrated_ledger(settings, db, view_db, list(registered_read_models().values())).close()
    view_db.close()


def build(settings: Settings, *, sandbox: SandboxEngine | None = None) -> Built:
    settings = settings.with_secrets()
    db = Database.from_url(settings.database_url)
    # The view database first: it holds the personal-data keys the ledger's mapper needs.
    view_db = ViewDatabase.open(db, pool_size=settings.read_pool_size)
    projections = registered_read_models()
    ledger = migrated_ledger(settings, db, view_db, list(projections.values()))
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
    # Migrated or checked above: nothing is created from here on.
    runners = [ProjectionRunner(ledger, projection, view_db, create=False) for projection in projections.values()]
    for runner in runners:
        ledger.listeners.append(lambda _recordings, runner=runner: runner.notify())
    ledger.listeners.append(count_charges)

    def catch_up() -> None:
        for runner in runners:
            runner.catch_up()

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
    )
    jobs = Jobs(job_context, settings.tz, clock)
    read_models = ReadModels(ledger, view_db, runners, create=False)
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
