"""Scheduled jobs (SPEC §6) as plain async functions of `now` that issue ledger commands.

Each is idempotent for a given `now`: running it twice does nothing the second
time, because it only acts on what the ledger still shows as due. The same
functions serve the in-process scheduler, arq cron, `POST /cron/run`,
`runScheduledJobs` and the test-clock driver.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from prometheus_client import Counter

from domain.errors import InvalidInput
from domain.ledger import Ledger
from domain.periods import daily_run_times
from domain.tracing import NO_TRACER, Tracer
from domain.wallet import EXPIRY_NOTICE
from workers.fanout import for_each
from workers.notifications import send_notifications
from workers.run_records import DailyRun
from workers.settle import settle_stale_payments
from workers.webhooks import deliver_webhooks
from workers.subscription_jobs import (
    charge_due_subscriptions,
    expire_trials,
    finish_cancellations,
    subscription_reminders,
)

log = structlog.get_logger("subledger.jobs")

JOB_RUNS = Counter("subledger_job_runs_total", "Scheduled job runs, by job.", ["job"])
JOB_ITEMS = Counter("subledger_job_items_total", "Items scheduled jobs handled, by job and outcome.", ["job", "outcome"])

MIDNIGHT_HOUR = 0


@dataclass
class JobContext:
    ledger: Ledger
    run_sync: Callable[..., Awaitable[Any]]
    history: Any  # projections.wallet_history queries
    catch_up: Callable[[], None]  # brings the in-process read models up to the ledger's head
    billing: Any = None  # domain.payments.flows.Billing
    payments: Any = None  # projections.payments.PaymentsQueries
    #: Charges and lookups in flight at once (SUBLEDGER_CHARGE_CONCURRENCY).
    concurrency: int = 32
    #: A PENDING charge recorded (wall clock) less than this ago may still be in its own
    #: request: the settle job leaves it to a later run (SUBLEDGER_SETTLE_GRACE_SECONDS).
    settle_grace: timedelta = timedelta(seconds=90)
    subscriptions: Any = None  # projections.subscriptions queries
    subscription_billing: Any = None  # domain.subscription_billing.SubscriptionBilling
    notifications: Any = None  # projections.notifications queries (the outbox)
    sender: Any = None  # workers.notifications.NotificationSender
    webhooks: Any = None  # workers.webhooks.WebhookDispatcher
    #: Splits large charge runs over processes (workers/charge_processes.py); None: one process.
    charge_processes: Any = None
    #: Where completed daily runs are recorded (workers/run_records.py); None records nothing.
    runs: Any = None


async def expire_points(ctx: JobContext, now: datetime) -> dict[str, int]:
    """Sweep every lot past its expiry into an EXPIRATION transaction (00:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    users = await ctx.run_sync(ctx.history.users_with_expired_lots, now)
    succeeded = failed = 0
    for user_id in users:
        try:
            swept = await ctx.run_sync(ctx.ledger.wallets.expire_wallet_points, user_id, now)
        except Exception:
            failed += 1
            log.exception("expire_points_failed", user_id=user_id)
            continue
        succeeded += 1 if swept else 0
    return {"processed": len(users), "succeeded": succeeded, "failed": failed}


async def warn_expiring_points(ctx: JobContext, now: datetime) -> dict[str, int]:
    """POINTS_EXPIRING: one notice per lot, a week before it expires (09:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    lots = await ctx.run_sync(ctx.history.lots_expiring_between, now, now + EXPIRY_NOTICE + timedelta(seconds=1))
    users = sorted({user_id for user_id, *_ in lots})
    return await for_each(
        users,
        lambda user_id: ctx.run_sync(ctx.ledger.wallets.warn_expiring_points, user_id, now),
        concurrency=ctx.concurrency,
        label="warn_expiring_points",
        total=len(users),
    )


Job = Callable[[JobContext, datetime], Awaitable[dict[str, int]]]

#: Jobs of the 00:00 run and of the 09:00 run, in the order they run.
# Stale PENDING payments are settled first: no new attempt starts while one is unresolved.
# Cancellations end before charging, so a subscription ending today is never charged.
MIDNIGHT_JOBS: list[tuple[str, Job]] = [
    ("settle_stale_payments", settle_stale_payments),
    ("finish_cancellations", finish_cancellations),
    ("expire_trials", expire_trials),
    ("charge_due_subscriptions", charge_due_subscriptions),
    ("expire_points", expire_points),
    ("send_notifications", send_notifications),
    ("deliver_webhooks", deliver_webhooks),
]
MORNING_JOBS: list[tuple[str, Job]] = [
    ("subscription_reminders", subscription_reminders),
    ("warn_expiring_points", warn_expiring_points),
    ("send_notifications", send_notifications),
    ("deliver_webhooks", deliver_webhooks),
]


class Jobs:
    def __init__(self, ctx: JobContext, tz: ZoneInfo, clock: Any) -> None:
        self.ctx = ctx
        self.tz = tz
        self.clock = clock
        #: A span per job (`job`), parent of its ledger commands and gateway calls.
        self.tracer: Tracer = NO_TRACER

    async def _run(self, jobs: list[tuple[str, Job]], now: datetime) -> list[dict[str, Any]]:
        runs = []
        for name, job in jobs:
            with self.tracer.span("job", {"subledger.job": name}) as span:
                counts = await job(self.ctx, now)
                for outcome in ("succeeded", "failed"):
                    span.set_attribute(f"subledger.job.{outcome}", counts.get(outcome, 0))
            log.info("job_ran", job=name, ran_at=now.isoformat(), **counts)
            JOB_RUNS.labels(name).inc()
            for outcome in ("succeeded", "failed"):
                JOB_ITEMS.labels(name, outcome).inc(counts.get(outcome, 0))
            runs.append({"job": name, "ran_at": now, **counts})
        return runs

    async def run_scheduled(
        self, at: datetime, force: str | None = None, slot: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The jobs scheduled at `at`: the midnight jobs at 00:00 local, the reminders at 09:00
        (`force` names the run when the caller knows it, as arq's cron jobs do). Recorded as
        the run of `slot`, by default the latest scheduled time of that run at `at`."""
        midnight = force == "midnight" if force else at.astimezone(self.tz).hour == MIDNIGHT_HOUR
        runs = await self._run(MIDNIGHT_JOBS if midnight else MORNING_JOBS, at)
        await self._record([DailyRun.MIDNIGHT if midnight else DailyRun.MORNING], at, slot)
        return runs

    async def run_due(self, now: datetime) -> list[dict[str, Any]]:
        """Everything due now (runScheduledJobs, POST /cron/run): every job is a function of
        `now` that acts only on what is due, so running all of them is safe at any time.
        It does what both daily runs would, so it is recorded as both."""
        runs = await self._run(MIDNIGHT_JOBS + MORNING_JOBS, now)
        await self._record(list(DailyRun), now)
        return runs

    async def _record(self, kinds: list[DailyRun], now: datetime, slot: datetime | None = None) -> None:
        records = self.ctx.runs
        if records is None:
            return
        for kind in kinds:
            scheduled = slot or kind.latest_slot(now, self.tz)
            await self.ctx.run_sync(lambda k=kind, s=scheduled: records.record(k, s, now, self.clock.now()))

    async def advance_test_clock(self, to: datetime) -> list[dict[str, Any]]:
        """Set the test clock to each scheduled run time up to `to`, in order, running what is
        due at each; then set it to `to` (SPEC §6)."""
        runs: list[dict[str, Any]] = []
        for at in daily_run_times(self.clock.now(), to, self.tz):
            await self._advance_clock(at)
            runs.extend(await self.run_scheduled(at))
        await self._advance_clock(to)
        return runs

    async def _advance_clock(self, to: datetime) -> None:
        """The test clock to `to`, unless another runner has moved it past `to` meanwhile (two
        servers advancing it at once): then it stays where that runner put it, and this run goes
        on. The jobs act only on what is due, so running a step's jobs late changes nothing; a
        caller's own `to` before now is refused earlier (`advanceTestClock`)."""
        try:
            await self.ctx.run_sync(self.clock.advance_to, to)
        except InvalidInput:
            if await self.ctx.run_sync(self.clock.now) < to:
                raise
