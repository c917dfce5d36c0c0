"""`subledger projector` with SUBLEDGER_METRICS_PORT serves the API's metric names on its
own port: projection lag and position, and the database gauges (both databases)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateways.tls import client_ssl_context
from tests.api.conftest import JWT_SECRET


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "the projector exited"
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, verify=client_ssl_context()).text
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "no metrics port"
            time.sleep(0.2)
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_the_projector_serves_metrics_on_its_port(database_url: str, tmp_path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(
        SUBLEDGER_DATABASE_URL=database_url,
        SUBLEDGER_JWT_SECRET=JWT_SECRET,
        SUBLEDGER_CLOCK="test",
        SUBLEDGER_METRICS_PORT=str(port),
    )
    with open(tmp_path / "projector.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "subledger.cli", "projector"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        samples = scrape(port, process)
        assert samples["subledger_projection_lag_events"][(("projection", "payments"),)] >= 0
        assert (("projection", "subscriptions"),) in samples["subledger_projection_position"]
        runs = samples["subledger_daily_run_last_success_timestamp_seconds"]
        assert runs == {(("run", "midnight"),): 0.0, (("run", "morning"),): 0.0}  # none has run on this database
        assert samples["subledger_payments_pending_stale"] == {(): 0.0}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, (tmp_path / "projector.log").read_text()
