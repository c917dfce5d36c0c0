"""A charge run split over two processes (SUBLEDGER_CHARGE_PROCESSES=2) on PostgreSQL and
the sandbox gateway over HTTP: run by a real `subledger worker` on Redis, each process
charges its own shard; cancelled mid-run, it leaves no process charging. Either way the
gateway and the ledger agree to the won, and every period is charged once."""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
from datetime import timedelta
from typing import Any

from gateways.sandbox_engine import Faults
from subledger.app import build
from tests.api.conftest import make_settings
from tests.workers.conftest import wait_for
from tests.workers.test_exactly_once import (  # noqa: F401  (fleet: a fixture)
    TRIAL_END_DAY,
    all_settled,
    charges_per_period,
    due_subscriptions,
    fleet,
    ledger_payments,
)
from workers.subscription_jobs import charge_due_subscriptions

BASIC_MONTHLY = 9900
RUN_LINE = re.compile(r"job_ran .*?job=charge_due_subscriptions .*?succeeded=(\d+)")
SHARD_LINE = re.compile(r"charge_shard_finished.*?failed=(\d+) pid=(\d+) processed=(\d+) shard=(\d)/2 succeeded=(\d+)")


def succeeded_in_ledger(api: Any) -> tuple[int, int]:
    """SUCCEEDED payments in the ledger's payments read model: how many, and their sum."""
    api.built.catch_up()
    with api.built.view_db.transaction(readonly=True) as cursor:
        row = cursor.execute(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS won FROM {api.built.services.payments.table}"
            " WHERE status = 'SUCCEEDED'"
        ).fetchone()
    return int(row["n"]), int(row["won"])


def test_a_run_split_over_two_processes_charges_each_subscription_once(fleet, start_worker, tmp_path) -> None:  # noqa: F811
    api, engine, url = fleet
    users = due_subscriptions(api, 240)
    engine.set_faults(Faults(latency_ms=20))
    api.built.clock.advance_to(TRIAL_END_DAY)
    # On the daily schedule, so one run charges: the clock's 00:00 run has no record yet, and
    # the worker catches it up as it starts (workers/missed_runs.py). A run every N seconds
    # would start another run while the split one is still charging (the shard process takes
    # seconds to start), and that one would take part of the second shard.
    worker = start_worker(SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_CHARGE_PROCESSES="2", SUBLEDGER_CHARGE_CONCURRENCY="16",
                          SUBLEDGER_WORKER_TICK_SECONDS="0", SUBLEDGER_MISSED_RUN_CHECK_SECONDS="0.5")
    wait_for(lambda: all_settled(api, users), timeout=240, what="every trial-end charge")
    log = tmp_path / "worker-0.log"
    runs = wait_for(lambda: RUN_LINE.findall(log.read_text()), timeout=60, what="the charge run's line")
    lines = SHARD_LINE.findall(log.read_text())
    by_shard: dict[str, list[tuple[int, int, int, int]]] = {"1": [], "2": []}
    for failed, pid, processed, shard, succeeded in lines:
        by_shard[shard].append((int(pid), int(processed), int(succeeded), int(failed)))
    # One run, split: shard 1 in the worker itself, shard 2 in a process of its own, each charging its part.
    assert runs == ["240"] and len(by_shard["1"]) == len(by_shard["2"]) == 1, (runs, lines)
    assert {pid for pid, *_ in by_shard["1"]} == {worker.pid}, lines
    assert worker.pid not in {pid for pid, *_ in by_shard["2"]}, lines
    charged = {shard: sum(succeeded for _, _, succeeded, _ in found) for shard, found in by_shard.items()}
    assert charged["1"] > 60 and charged["2"] > 60 and charged["1"] + charged["2"] == 240, lines
    assert not any(failed for found in by_shard.values() for *_, failed in found), lines
    # Both sides of the money: the gateway's charges and the ledger's payments, to the won.
    periods = charges_per_period(engine)
    assert len(periods) == 240 and set(periods.values()) == {1}
    assert sum(int(charge["amount"]) for charge in engine.charges()) == 240 * BASIC_MONTHLY
    assert succeeded_in_ledger(api) == (240, 240 * BASIC_MONTHLY)


def test_a_split_run_cancelled_stops_its_processes_and_later_runs_charge_each_period_once(
    api_factory, sandbox_server, database_url
) -> None:
    """A worker stopped past arq's grace cancels its run: the shard process is stopped too
    (not left charging, not waited for), and what it had in flight settles like any charge
    of a killed worker."""
    url, engine = sandbox_server
    api = api_factory(sandbox_url=url)
    users = due_subscriptions(api, 200)
    engine.set_faults(Faults(latency_ms=1500))
    api.built.clock.advance_to(TRIAL_END_DAY)
    runner = build(make_settings(database_url, sandbox_url=url, charge_processes=2, charge_concurrency=8))

    async def until(condition: Any, what: str) -> None:
        for _ in range(600):
            if condition():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario() -> tuple[list[multiprocessing.Process], int]:
        try:
            return await cancel_then_settle()
        finally:
            await runner.aclose()  # on this loop: the gateway's clients belong to it

    async def cancel_then_settle() -> tuple[list[multiprocessing.Process], int]:
        run = asyncio.create_task(charge_due_subscriptions(runner.jobs.ctx, TRIAL_END_DAY))
        await until(lambda: len(engine.charges()) >= 8 and multiprocessing.active_children(), "the split run")
        shard_processes = multiprocessing.active_children()
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        for process in shard_processes:
            await asyncio.to_thread(process.join, 10)
        await until(lambda: engine.busy() == 0, "the requests in flight to land")
        charged_at_cancel = len(engine.charges())
        engine.set_faults(Faults())
        # The next run settles what was in flight first; what never reached the gateway
        # failed (NETWORK_ERROR) and is retried on dunning's day 3.
        await runner.jobs.run_due(TRIAL_END_DAY + timedelta(minutes=2))
        await runner.jobs.run_due(TRIAL_END_DAY + timedelta(days=3))
        return shard_processes, charged_at_cancel

    shard_processes, charged_at_cancel = asyncio.run(scenario())
    assert shard_processes and not any(process.is_alive() for process in shard_processes)
    # Cancelled after 8 charges with 8 in flight: a shard process left running would have
    # charged its whole half (about 100) by now.
    assert charged_at_cancel < 40, charged_at_cancel
    wait_for(lambda: all(s and s[-1] == "SUCCEEDED" for s in ledger_payments(api, users).values()), what="every period paid")
    periods = charges_per_period(engine)
    assert len(periods) == 200 and set(periods.values()) == {1}
    assert sum(int(charge["amount"]) for charge in engine.charges()) == 200 * BASIC_MONTHLY
    assert succeeded_in_ledger(api) == (200, 200 * BASIC_MONTHLY)
