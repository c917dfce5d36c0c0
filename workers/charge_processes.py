"""The 00:00 charge run split over several processes (SUBLEDGER_CHARGE_PROCESSES).

A renewal charge costs the worker about 14 ms of CPU in eventsourcing, psycopg and
the gateway client, all under one interpreter lock, while PostgreSQL and the gateway
leave the machine's other cores idle (docs/performance.md). So a large run is cut into
shards by subscription id: the process running the job charges shard 0 itself and
starts one process per other shard, each building the app from the same settings and
charging only its own subscriptions at the same `now`. The job waits for every shard
and adds up their counts, so the daily run is recorded once, after all of them.

Why processes the job starts, not arq jobs: arq hands a queued job to whichever worker
polls first, and one worker with free slots takes every shard, so the run would stay
on one core. A pool started by the run puts each shard on a process of its own, under
`subledger worker` and under `serve`'s in-process scheduler alike.

Sharding changes nothing about exactly-once: every charge is still recorded PENDING
before it is sent, under a deterministic order id, by the same command
(docs/payments.md); shards are disjoint, and even overlapping ones would charge a
period once. The charges in flight across all shards stay within
SUBLEDGER_CHARGE_CONCURRENCY: each shard gets its share.

Only on PostgreSQL: SQLite has one writer at a time, so a second process would wait for
the first instead of working beside it (settings refuse the combination).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: A run is split only when each process would get at least this many charges: a
#: process takes about 2 s of CPU to start and build the app, about 140 charges' worth.
MIN_DUE_PER_PROCESS = 100


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the subscriptions whose id hashes (CRC-32) to `index`."""

    index: int = 0
    count: int = 1

    def owns(self, subscription_id: str) -> bool:
        return self.count == 1 or zlib.crc32(subscription_id.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


WHOLE = Shard()


def shards_for(processes: int, due: int) -> int:
    """How many shards a run of `due` charges is split into with `processes` allowed."""
    return max(1, min(processes, due // MIN_DUE_PER_PROCESS))


class ChargeProcesses:
    """Runs shards of a charge run in processes of their own (spawned: the caller has
    threads and open connections that a fork would copy half-way)."""

    def __init__(self, settings: Any, processes: int) -> None:
        self.settings = settings
        #: Processes a run may use, this one included (SUBLEDGER_CHARGE_PROCESSES).
        self.processes = processes

    async def run(self, now: datetime, shards: list[Shard], concurrency: int) -> list[dict[str, int]]:
        """Each shard's counts, once every shard's process has finished; a shard that failed
        fails the run after the others finished. Cancelled (a worker stopping after arq's
        grace), it stops the shard processes with SIGTERM rather than wait minutes for them:
        what they had in flight is PENDING, and the next run's settle job looks it up before
        anything is charged again, as after a worker killed mid-run."""
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        before = set(multiprocessing.active_children())
        pool = ProcessPoolExecutor(max_workers=len(shards), mp_context=context)
        futures = [
            loop.run_in_executor(pool, charge_shard_in_process, self.settings, now, shard, concurrency)
            for shard in shards
        ]
        started = set(multiprocessing.active_children()) - before  # spawned on the first submit
        try:
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
        except asyncio.CancelledError:
            for process in started:
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)  # reaped: their CPU counts in the parent's RUSAGE_CHILDREN
        for outcome in outcomes:  # a shard that failed fails the run, once the others are done
            if isinstance(outcome, BaseException):
                raise outcome
        return list(outcomes)


def charge_shard_in_process(settings: Any, now: datetime, shard: Shard, concurrency: int) -> dict[str, int]:
    """A shard process's whole life: build the service (no HTTP app), charge the shard, close."""
    from subledger.core import build_core
    from subledger.logging import configure_logging
    from workers.subscription_jobs import charge_shard

    configure_logging(settings.env, settings.log_level)
    built = build_core(settings)

    async def run() -> dict[str, int]:
        try:
            return await charge_shard(built.jobs.ctx, now, shard, concurrency)
        finally:
            await built.aclose()

    return asyncio.run(run())
