"""The in-process scheduler of the embedded default (no Redis): the daily runs of
SPEC §6 (00:00 and 09:00 local) inside `subledger serve`, on the system clock."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from domain.periods import daily_run_times

log = structlog.get_logger("subledger.scheduler")


class InProcessScheduler:
    def __init__(self, jobs: Any, clock: Any, tz: ZoneInfo) -> None:
        self.jobs = jobs
        self.clock = clock
        self.tz = tz
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="subledger-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            now = self.clock.now()
            upcoming = daily_run_times(now, now + timedelta(days=1), self.tz)
            if not upcoming:
                await asyncio.sleep(60)
                continue
            at = upcoming[0]
            await asyncio.sleep(max(0.0, (at - self.clock.now()).total_seconds()))
            try:
                await self.jobs.run_scheduled(at)
            except Exception:  # a failed run must not stop the next ones
                log.exception("scheduled_run_failed", at=at.isoformat())
