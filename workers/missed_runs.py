"""Catching up a missed 00:00 or 09:00 run (docs/operations-monitoring.md#missed-runs).

arq's cron does not catch up: a run whose time passed while no worker was up is skipped
until the next day. So each worker, as it starts and then every
SUBLEDGER_MISSED_RUN_CHECK_SECONDS, compares the latest scheduled time of each run (in
SUBLEDGER_TIMEZONE, on the job clock) with the completed runs recorded in the database
(workers/run_records.py). A run whose latest scheduled time has no record is missed, and
the worker enqueues it at once, under the very job id arq's unique cron job has for that
time: however many workers look at once, arq queues one job, and a catch-up and the cron
run of one time exclude each other. The job itself looks at the record again before it
runs, so a run that completed meanwhile (or while Redis was flushed) is not repeated.

- The catch-up runs the jobs at the time it runs (the clock's now), not at the missed
  time: its ledger entries carry the time they happened, and every job acts on what is
  due at its `now`, which includes what was due at the missed time.
- Two missed runs go in the order they were scheduled, one at a time: the next is only
  enqueued once the first is recorded.
- A catch-up that fails is tried again once arq's result of it expires (KEEP_RESULT).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from workers.run_records import DailyRun, RunRecords

log = structlog.get_logger("subledger.missed_runs")

#: The arq function a catch-up runs as (registered by workers/arq_worker.py).
FUNCTION = "missed_run"
#: Seconds arq keeps a finished catch-up's result: its job id cannot be queued again
#: meanwhile, so a catch-up that failed is tried again after this long.
KEEP_RESULT = 3600


class MissedRuns:
    def __init__(
        self, records: RunRecords, clock: Any, tz: ZoneInfo, run_sync: Callable[..., Awaitable[Any]]
    ) -> None:
        self.records = records
        self.clock = clock
        self.tz = tz
        self.run_sync = run_sync

    def missed(self) -> list[tuple[DailyRun, datetime]]:
        """Each run whose latest scheduled time has no completed run, oldest first."""
        now = self.clock.now()
        found = []
        for run in DailyRun:
            slot = run.latest_slot(now, self.tz)
            if not self.records.completed(run, slot):
                found.append((run, slot))
        return sorted(found, key=lambda item: item[1])

    async def enqueue_oldest(self, redis: Any) -> tuple[DailyRun, datetime, bool] | None:
        """Queue the oldest missed run; (run, scheduled time, whether this call queued it)."""
        missed = await self.run_sync(self.missed)
        if not missed:
            return None
        run, slot = missed[0]
        job = await redis.enqueue_job(FUNCTION, run.value, slot.isoformat(), _job_id=run.job_id(slot))
        if job is not None:
            log.info("missed_run_enqueued", run=run.value, scheduled_at=slot.isoformat(), job_id=job.job_id)
        return run, slot, job is not None

    async def watch(self, redis: Any, interval: float) -> None:
        """Look at once, then every `interval` seconds, until cancelled."""
        first = True
        while True:
            try:
                found = await self.enqueue_oldest(redis)
                if first:
                    # One line per start: what this worker found (the tests wait for it).
                    log.info("missed_runs_checked", missed=found[0].value if found else None)
                    first = False
            except Exception:  # the database or Redis is away: look again later
                log.exception("missed_runs_check_failed")
            await asyncio.sleep(interval)


async def missed_run(ctx: dict[str, Any], run: str, scheduled_at: str) -> list[dict[str, Any]]:
    """The arq job of a catch-up: the run named, at the clock's now, recorded for `scheduled_at`."""
    built = ctx["built"]
    kind, slot = DailyRun(run), datetime.fromisoformat(scheduled_at)
    run_sync = built.services.run_sync
    if await run_sync(built.jobs.ctx.runs.completed, kind, slot):
        log.info("missed_run_skipped", run=run, scheduled_at=scheduled_at, reason="already completed")
        return []
    now = await run_sync(built.clock.now)
    log.info("missed_run_started", run=run, scheduled_at=scheduled_at, late_s=round((now - slot).total_seconds()))
    return await built.jobs.run_scheduled(now, force=kind.value, slot=slot)
