"""arq on Redis: the daily runs of SPEC §6 as cron jobs, any number of workers.

Each cron job is `unique`: arq derives its job id from the scheduled time, so
two workers that both see 00:00 enqueue one run, and one of them runs it.
Underneath, every job is idempotent for its `now` and every charge has a
deterministic order id, so even a run repeated after a crash charges nothing
twice (docs/payments.md).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

import structlog
from arq import cron, func
from arq.connections import RedisSettings

from workers.missed_runs import FUNCTION as MISSED_RUN
from workers.missed_runs import KEEP_RESULT, MissedRuns, missed_run

log = structlog.get_logger("subledger.worker")

#: A run of 100,000 renewals takes minutes; arq's default 300 s would cancel it half-way.
RUN_TIMEOUT_SECONDS = 6 * 3600
#: Webhooks wait at most this long for a worker (the API's own loop usually sends them sooner).
WEBHOOK_EVERY_SECONDS = 5


def scheduled_time(ctx: dict[str, Any]) -> datetime:
    """The time this run was scheduled for: the clock's now on a test clock, else the
    scheduled instant that arq put in the unique job id (`cron:<name>:<unix ms>`)."""
    built = ctx["built"]
    if built.clock.controllable:
        return built.clock.now()
    job_id = ctx.get("job_id") or ""
    _, _, millis = job_id.rpartition(":")
    if millis.isdigit():
        return datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc)
    return built.clock.now()


async def midnight_run(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    return await ctx["built"].jobs.run_scheduled(scheduled_time(ctx), force="midnight")


async def morning_run(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    return await ctx["built"].jobs.run_scheduled(scheduled_time(ctx), force="morning")


async def due_run(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything due at the clock's now (the fast test schedule)."""
    built = ctx["built"]
    return await built.jobs.run_due(built.clock.now())


async def webhook_run(ctx: dict[str, Any]) -> dict[str, int]:
    """Webhooks due at the clock's now (workers/webhooks.py), every few seconds."""
    from workers.webhooks import deliver_webhooks

    built = ctx["built"]
    return await deliver_webhooks(built.jobs.ctx, built.clock.now())


async def startup(ctx: dict[str, Any]) -> None:
    from subledger.core import build_core  # no HTTP app: a worker serves no GraphQL
    from subledger.settings import Settings

    settings = Settings()
    built = ctx["built"] = build_core(settings)
    log.info("worker_started", pid=os.getpid())
    if settings.metrics_port:
        from subledger.metrics_port import serve_metrics

        serve_metrics(settings.metrics_port, built.services.extra["refresh_metrics"])
    if not settings.worker_tick_seconds:
        # Runs missed while no worker was up run now, once across workers (workers/missed_runs.py).
        watcher = MissedRuns(built.jobs.ctx.runs, built.clock, settings.tz, built.services.run_sync)
        ctx["missed_runs"] = asyncio.create_task(watcher.watch(ctx["redis"], settings.missed_run_check_seconds))


async def shutdown(ctx: dict[str, Any]) -> None:
    watcher = ctx.get("missed_runs")
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    built = ctx.get("built")
    if built is not None:
        await built.aclose()
    log.info("worker_stopped", pid=os.getpid())


def worker_settings(settings: Any) -> type:
    """arq's WorkerSettings for these settings. `SUBLEDGER_WORKER_TICK_SECONDS` replaces the
    daily schedule by a run every N seconds at the clock's now (tests drive the test clock)."""
    tick = settings.worker_tick_seconds
    if tick:
        cron_jobs = [
            cron(due_run, second=set(range(0, 60, tick)), unique=True, timeout=RUN_TIMEOUT_SECONDS, run_at_startup=True)
        ]
    else:
        # microsecond=0: the job id is the scheduled instant itself, as a catch-up computes it.
        cron_jobs = [
            cron(midnight_run, hour=0, minute=0, second=0, microsecond=0, unique=True, timeout=RUN_TIMEOUT_SECONDS),
            cron(morning_run, hour=9, minute=0, second=0, microsecond=0, unique=True, timeout=RUN_TIMEOUT_SECONDS),
            cron(webhook_run, second=set(range(0, 60, WEBHOOK_EVERY_SECONDS)), unique=True, timeout=600),
        ]
    functions = [func(missed_run, name=MISSED_RUN, timeout=RUN_TIMEOUT_SECONDS, keep_result=KEEP_RESULT)]

    class WorkerSettings:
        redis_settings = RedisSettings.from_dsn(settings.redis_url)
        on_startup = startup
        on_shutdown = shutdown
        timezone = settings.tz
        health_check_interval = 30
        # One health key per host (a container's hostname is its own), so `worker --check` in a
        # worker's container answers for that worker, not for any worker on the queue.
        health_check_key = f"arq:queue:health-check:{socket.gethostname()}"
        job_timeout = RUN_TIMEOUT_SECONDS
        # A run still going on SIGTERM gets time to finish its in-flight charges.
        job_completion_wait = 60
        max_jobs = 4

    WorkerSettings.cron_jobs = cron_jobs
    WorkerSettings.functions = functions
    return WorkerSettings


def run_until_stopped(settings_cls: type, retry_seconds: float = 1.0) -> None:
    """Run an arq worker until it is stopped (SIGTERM/SIGINT). When Redis goes away under it
    (a restart, a failover), arq's loop raises and the worker would exit; instead it is
    started again, and waits for Redis as it does at startup. Every run is idempotent for
    its time, so a run cut short is finished by the next one (tests/faults)."""
    from arq.worker import run_worker
    from redis.exceptions import RedisError

    while True:
        try:
            run_worker(settings_cls)
            return
        # Not only ConnectionError: a connection lost inside a pipeline's WATCH surfaces as WatchError.
        except (RedisError, OSError) as error:
            log.warning("worker_lost_redis", error=type(error).__name__, retry_in_s=retry_seconds)
            time.sleep(retry_seconds)
