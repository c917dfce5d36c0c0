"""Real arq workers (`subledger worker` processes) on a real Redis, for the worker suite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from tests.api.conftest import CLOCK_START, CRON_SECRET, JWT_SECRET
from tests.servers import serve_asgi

from tests.api.conftest import api, api_factory, user  # noqa: F401,E402  (fixtures; pytest_plugins is root-only)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Workers are a production layout: PostgreSQL (the in-process path runs on both databases
    in tests/api and tests/scenarios)."""
    return postgres_url


@pytest.fixture
def sandbox_server() -> Iterator[tuple[str, SandboxEngine]]:
    """One sandbox gateway over real HTTP shared by the test, its API server and every worker,
    so its charges can be counted in one place."""
    engine = SandboxEngine()
    with serve_asgi(create_app(engine), lifespan="off") as url:
        yield url, engine


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """An empty Redis database: arq's queue and unique cron ids start from nothing."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


def worker_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(
        SUBLEDGER_DATABASE_URL=database_url,
        SUBLEDGER_REDIS_URL=redis_url,
        SUBLEDGER_JWT_SECRET=JWT_SECRET,
        SUBLEDGER_CRON_SECRET=CRON_SECRET,
        SUBLEDGER_CLOCK="test",
        SUBLEDGER_CLOCK_START=CLOCK_START,
        SUBLEDGER_GATEWAY_RETRY_BASE_SECONDS="0.01",
        SUBLEDGER_THREADS="8",
        SUBLEDGER_WORKER_TICK_SECONDS="1",
        SUBLEDGER_SETTLE_GRACE_SECONDS="0",
    )
    env.update(extra)
    return env


@pytest.fixture
def start_worker(database_url: str, clean_redis: str, tmp_path) -> Iterator[Any]:
    """Start `subledger worker` processes; all are stopped (SIGTERM, then SIGKILL) afterwards.
    Their logs go to files (a pipe nobody reads would fill up and block the worker)."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**extra: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(processes)}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "subledger.cli", "worker"],
            env=worker_env(database_url, clean_redis, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
