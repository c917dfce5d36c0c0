"""`subledger bench layers` as a process, on SQLite and PostgreSQL: every layer is measured
and every request of it answered without errors (the bench stops at the first that is not)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.layers import LAYERS

ROOT = Path(__file__).resolve().parents[2]


def test_bench_layers_reports_every_layer(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "subledger.cli", "bench", "layers", "--requests", "64", "--rounds", "2"],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": database_url}, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"bench"')]
    assert len(lines) == 1 and lines[0]["bench"] == "layers"
    figures = lines[0]
    assert figures["requests"] == 64 and figures["database"] in database_url.split(":")[0]
    assert set(figures["cpu_ms_per_request"]) == set(LAYERS)
    assert all(len(rounds) == 2 and min(rounds) > 0 for rounds in figures["every_round"].values())
    assert figures["ratio_to_command"]["command_threads"] == 1.0
    # Every access line went to the bench's /dev/null, not to its output.
    assert "http_request" not in done.stdout
