"""Redis restarted (its queue and arq's job ids lost: no persistence) while two
`subledger worker` processes run the midnight jobs of a renewal day: the workers
carry on by themselves and every due subscription is charged exactly once."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from benchmarks.gql_client import GraphQL
from tests.faults.conftest import (
    check_books,
    gateway_charges,
    new_users,
    set_clock,
    periods_charged,
    sandbox_faults,
    subscribe_all,
    subscription_payments,
    wait_until,
    with_sandbox,
)

TRIAL_END = datetime.fromisoformat("2026-03-08T00:00:00+09:00")
DUE = 40


def test_redis_restarted_while_two_workers_run_the_midnight_jobs(shared_postgres, own_redis, deploy) -> None:
    deployment = deploy(shared_postgres, own_redis.url)
    sandbox = with_sandbox(deployment)
    api = deployment.serve()
    gql = GraphQL(api.url)
    users = new_users(gql, DUE, "redis")
    subscribe_all(gql, users)
    # A slow gateway with few slots: the run lasts long enough to be cut by the restart.
    sandbox_faults(sandbox, latencyMs=300)
    set_clock(shared_postgres, TRIAL_END)
    workers = [deployment.worker(SUBLEDGER_WORKER_TICK_SECONDS="1", SUBLEDGER_CHARGE_CONCURRENCY="2")
               for _ in range(2)]
    wait_until(lambda: len(gateway_charges(sandbox)) >= 5, 120, "the run to be under way")
    charged_at_restart = len(gateway_charges(sandbox))
    own_redis.restart(down_seconds=2)  # long enough for every worker to see it gone
    assert charged_at_restart < DUE, "the run finished before the restart; the test proves nothing"

    def settled() -> bool:
        return all(subscription_payments(gql, user) == ["SUCCEEDED"] for user, _ in users)

    wait_until(settled, 240, "every due subscription to be charged after the restart", interval=1)
    dead = [worker.log()[-3000:] for worker in workers if not worker.alive()]
    assert not dead, f"a worker died with Redis: {dead}"
    assert any("worker_lost_redis" in worker.log() for worker in workers), "no worker saw Redis go"
    time.sleep(3)  # a few more ticks of both workers: nothing is charged again
    periods = periods_charged(sandbox)
    assert len(periods) == DUE and set(periods.values()) == {1}, periods
    sandbox_faults(sandbox)
    set_clock(shared_postgres, TRIAL_END + timedelta(minutes=5))
    check_books(deployment, gql, [u for u, _ in users])
