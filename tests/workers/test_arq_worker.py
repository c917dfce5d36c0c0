"""The arq worker really runs the scheduled jobs, on real Redis and both databases."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from tests.api.conftest import Api
from tests.workers.conftest import wait_for, worker_env

REWARD = 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "referral_signup"}) { amount } }'
WALLET = "{ wallet { usableBalance totalBalance } }"


def test_worker_sweeps_expired_points_at_the_test_clocks_now(api: Api, user: str, start_worker) -> None:
    api.gql(REWARD, {"u": user}, user="ops", scope="admin")
    start_worker()
    # Move the clock past the lot's expiry without running anything here: only the worker can sweep it.
    api.built.clock.advance_to(api.built.clock.now() + timedelta(days=366))
    assert api.gql(WALLET, user=user)["wallet"] == {"usableBalance": 0, "totalBalance": 500}
    wait_for(lambda: api.gql(WALLET, user=user)["wallet"]["totalBalance"] == 0, what="the worker's expiry run")


def test_worker_health_check(api: Api, start_worker, database_url: str, clean_redis: str) -> None:
    env = worker_env(database_url, clean_redis)
    command = [sys.executable, "-m", "subledger.cli", "worker", "--check"]
    assert subprocess.run(command, env=env, capture_output=True).returncode == 1  # no worker yet
    start_worker()
    wait_for(lambda: subprocess.run(command, env=env, capture_output=True).returncode == 0, what="a healthy worker")


def test_worker_refuses_to_start_without_redis(database_url: str) -> None:
    env = worker_env(database_url, "")
    env.pop("SUBLEDGER_REDIS_URL")
    done = subprocess.run([sys.executable, "-m", "subledger.cli", "worker"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "SUBLEDGER_REDIS_URL" in done.stderr
