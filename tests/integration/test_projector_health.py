"""`subledger projector --check`, the projector's container healthcheck: 1 before the projector
runs, 0 while it runs and its read models keep up, 1 again once it stopped; and 1, naming the
read model, when one lags more than SUBLEDGER_READY_MAX_LAG events. Each answer is one line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.test_production_mode import ROOT


def command(health: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "subledger.cli", "projector", "--health-file", str(health), *args]


def check(health: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command(health, "--check"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def wait_for_check(
    health: Path, env: dict[str, str], process: subprocess.Popen, accept: Callable[[subprocess.CompletedProcess], bool]
) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        done = check(health, env)
        if accept(done):
            return done
        time.sleep(0.3)
    raise AssertionError(f"projector --check never answered as expected: {done.returncode} {done.stderr}")


def run_projector(tmp_path: Path, database_url: str, **extra: str) -> tuple[subprocess.Popen, Path, dict[str, str]]:
    health = tmp_path / "projector-health.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update({"SUBLEDGER_DATABASE_URL": database_url, **extra})
    process = subprocess.Popen(command(health), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, health, env


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 0


def test_the_check_follows_the_projector(tmp_path: Path, database_url: str) -> None:
    process, health, env = run_projector(tmp_path, database_url)
    try:
        before = check(health, env)
        assert before.returncode == 1 and before.stderr.count("\n") == 1 and "not running" in before.stderr
        wait_for_check(health, env, process, lambda done: done.returncode == 0)
    finally:
        stop(process)
    after = check(health, env)
    assert after.returncode == 1 and "not running" in after.stderr


def test_a_lagging_read_model_fails_the_check(tmp_path: Path, database_url: str) -> None:
    # Every read model "lags" more than -1 events: the heartbeat names them.
    process, health, env = run_projector(tmp_path, database_url, SUBLEDGER_READY_MAX_LAG="-1")
    try:
        lagging = wait_for_check(health, env, process, lambda done: "lags" in done.stderr)
    finally:
        stop(process)
    assert lagging.returncode == 1 and lagging.stderr.count("\n") == 1
    assert lagging.stderr.startswith("subledger projector: projection ")
