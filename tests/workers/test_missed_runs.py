"""A 00:00 or 09:00 run missed while no worker was up runs as soon as workers start, once
across all of them (workers/missed_runs.py); a worker that finds nothing missed runs
nothing. Real `subledger worker` processes on their daily schedule (not the fast tick),
real Redis, the sandbox gateway over HTTP, both databases; the test only moves the test
clock, stops and starts workers, and scrapes each worker's own metrics port."""
from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateways.tls import client_ssl_context
from tests.api.conftest import Api
from tests.conftest import POSTGRES_URL, _require
from tests.scenarios.helpers import seoul
from tests.workers.conftest import wait_for
from tests.workers.test_exactly_once import TRIAL_END_DAY, all_settled, charges_per_period, due_subscriptions, ledger_payments
from workers.run_records import CompletedRun, DailyRun

DUE = 12  # subscriptions whose trial ends on TRIAL_END_DAY: charged by its 00:00 run


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Both databases here: the API in the test process and every worker share one ledger."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    base = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    return f"{base}{'&' if '?' in base else '?'}schema=t_{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DailyWorker:
    """A `subledger worker` on the daily schedule with its own metrics port."""

    def __init__(self, start_worker: Any, sandbox_url: str, tmp_path: Any, index: int) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] = start_worker(
            SUBLEDGER_SANDBOX_URL=sandbox_url,
            SUBLEDGER_WORKER_TICK_SECONDS="0",  # the real 00:00 / 09:00 cron, not a run every second
            SUBLEDGER_MISSED_RUN_CHECK_SECONDS="0.5",
            SUBLEDGER_METRICS_PORT=str(self.port),
        )
        self.log_path = tmp_path / f"worker-{index}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def checked(self) -> bool:
        return "missed_runs_checked" in self.log()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5, verify=client_ssl_context()).text
        except httpx.HTTPError:
            return None
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def job_runs(self, job: str) -> float:
        samples = self.samples() or {}
        return samples.get(("subledger_job_runs_total", (("job", job),)), 0.0)

    def last_success(self, run: DailyRun) -> float | None:
        samples = self.samples() or {}
        return samples.get(("subledger_daily_run_last_success_timestamp_seconds", (("run", run.value),)))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def history(api: Api, run: DailyRun) -> list[CompletedRun]:
    return api.built.jobs.ctx.runs.history(run)


def recorded(api: Api, run: DailyRun, slot: datetime) -> CompletedRun | None:
    return next((done for done in history(api, run) if done.scheduled_at == slot), None)


@pytest.fixture
def before_midnight(api_factory: Any, sandbox_server: tuple[str, Any], start_worker, tmp_path) -> tuple[Api, Any, Any]:
    """DUE trials ending on TRIAL_END_DAY; a worker was up on the day before (it recorded
    that day's 00:00 and 09:00 runs: a new database has none, so it ran both at start) and
    was stopped before midnight. Returns (api, sandbox engine, start(n) of daily workers)."""
    url, engine = sandbox_server
    api = api_factory(sandbox_url=url)
    users = due_subscriptions(api, DUE)
    started: list[DailyWorker] = []

    def start(count: int) -> list[DailyWorker]:
        # Popen returns at once: the workers start together.
        workers = [DailyWorker(start_worker, url, tmp_path, len(started) + i) for i in range(count)]
        started.extend(workers)
        return workers

    api.built.clock.advance_to(seoul(2026, 3, 7, 12))
    [worker] = start(1)
    wait_for(lambda: recorded(api, DailyRun.MORNING, seoul(2026, 3, 7, 9)), timeout=90, what="the 7th's runs")
    assert recorded(api, DailyRun.MIDNIGHT, seoul(2026, 3, 7)) is not None
    assert worker.last_success(DailyRun.MIDNIGHT) == seoul(2026, 3, 7, 12).timestamp()
    worker.stop()
    assert not engine.charges() and all(statuses == [] for statuses in ledger_payments(api, users).values())
    api.users = users  # type: ignore[attr-defined]
    return api, engine, start


def test_a_missed_midnight_runs_once_when_two_workers_start(before_midnight) -> None:
    api, engine, start = before_midnight
    users = api.users
    api.built.clock.advance_to(TRIAL_END_DAY.replace(hour=1))  # 01:00: the 00:00 run was missed
    workers = start(2)
    wait_for(lambda: all_settled(api, users), timeout=120, what="the missed 00:00 run's charges")
    wait_for(lambda: recorded(api, DailyRun.MIDNIGHT, TRIAL_END_DAY), timeout=30, what="the run's record")
    time.sleep(2)  # four more looks by each worker: time for a second run to show
    periods = charges_per_period(engine)
    assert len(periods) == DUE and set(periods.values()) == {1}
    assert all(statuses == ["SUCCEEDED"] for statuses in ledger_payments(api, users).values())
    assert recorded(api, DailyRun.MIDNIGHT, TRIAL_END_DAY).completions == 1
    assert [w.job_runs("charge_due_subscriptions") for w in workers].count(1.0) == 1
    assert sum(w.job_runs("charge_due_subscriptions") for w in workers) == 1
    # The 09:00 of the 7th is the latest 09:00 and it ran: no morning run was due.
    assert history(api, DailyRun.MORNING)[-1].scheduled_at == seoul(2026, 3, 7, 9)
    assert sum(w.job_runs("subscription_reminders") for w in workers) == 0
    assert sum(w.log().count("missed_run_enqueued") for w in workers) == 1
    for worker in workers:
        worker.stop()

    # Nothing missed now: a worker that starts runs nothing.
    [again] = start(1)
    wait_for(again.checked, timeout=60, what="the new worker's first look")
    time.sleep(1.5)
    assert again.job_runs("charge_due_subscriptions") == 0 and "missed_run_enqueued" not in again.log()
    assert recorded(api, DailyRun.MIDNIGHT, TRIAL_END_DAY).completions == 1
    assert len(engine.charges()) == DUE

    # While it runs, the clock passes 09:00: its job counter and last-run gauge move.
    before = again.last_success(DailyRun.MORNING)
    assert before == history(api, DailyRun.MORNING)[-1].completed_at.timestamp()
    api.built.clock.advance_to(TRIAL_END_DAY.replace(hour=9, minute=30))
    wait_for(lambda: again.job_runs("subscription_reminders") == 1, timeout=60, what="the 09:00 run")
    wait_for(
        lambda: again.last_success(DailyRun.MORNING) == TRIAL_END_DAY.replace(hour=9, minute=30).timestamp(),
        timeout=10,
        what="the last-run gauge",
    )
    assert before < again.last_success(DailyRun.MORNING)
    assert again.job_runs("charge_due_subscriptions") == 0  # the 00:00 run had been done


def test_missed_midnight_and_morning_each_run_once(before_midnight) -> None:
    api, engine, start = before_midnight
    users = api.users
    api.built.clock.advance_to(TRIAL_END_DAY.replace(hour=10))  # both the 00:00 and the 09:00 were missed
    workers = start(2)
    wait_for(lambda: recorded(api, DailyRun.MORNING, TRIAL_END_DAY.replace(hour=9)), timeout=120, what="both runs")
    time.sleep(2)
    midnight = recorded(api, DailyRun.MIDNIGHT, TRIAL_END_DAY)
    morning = recorded(api, DailyRun.MORNING, TRIAL_END_DAY.replace(hour=9))
    assert midnight is not None and midnight.completions == 1 and morning.completions == 1
    # They ran in the order they were scheduled, at the time they ran (10:00), not at 00:00.
    assert midnight.ran_at == morning.ran_at == TRIAL_END_DAY.replace(hour=10)
    assert sum(w.job_runs("charge_due_subscriptions") for w in workers) == 1
    assert sum(w.job_runs("subscription_reminders") for w in workers) == 1
    assert sum(w.log().count("missed_run_enqueued") for w in workers) == 2
    periods = charges_per_period(engine)
    assert len(periods) == DUE and set(periods.values()) == {1}
    assert all_settled(api, users)
