"""Development without SMTP logs each notification once, whatever the number of processes.

The logging sender records a whole batch of the outbox as LOGGED in one transaction, and
only the process whose insert recorded a notification writes it to the log. Two real
processes are released onto the same backlog at once (in trials the one that lost the race
for the first batch found all 200 taken and stopped; the other logged the rest): every
notification ends LOGGED, with one attempt, and appears in exactly one process's log,
exactly once."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.rebuild import populate
from subledger.app import build
from tests.api.conftest import make_settings

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROOT = Path(__file__).resolve().parents[2]
SENDER = """
import asyncio, json, os, sys, time
from subledger.app import build
from subledger.settings import Settings
from workers.notifications import deliver_pending
built = build(Settings(database_url=sys.argv[1], jwt_secret="x" * 32))
open(sys.argv[2] + f".ready.{os.getpid()}", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
counts = asyncio.run(deliver_pending(built.jobs.ctx, built.clock.now()))
print("COUNTS " + json.dumps(counts), flush=True)
"""


def _backlog(database_url: str) -> list[str]:
    """A ledger whose outbox holds a few thousand notifications no sender has touched."""
    built = build(make_settings(database_url))
    try:
        populate(built.ledger, 12_000, tag="outbox")
        built.read_models.rebuild(None, wait_for_drop=True)
        return [n["id"] for n in built.services.notifications.unsent(100_000)]
    finally:
        asyncio.run(built.aclose())


def test_two_processes_log_a_backlog_each_notification_once(database_url: str, tmp_path: Path) -> None:
    pending = _backlog(database_url)
    assert len(pending) > 1_000  # several batches for the two to meet over

    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    senders = [
        subprocess.Popen([sys.executable, "-c", SENDER, database_url, str(go)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < 2:
        assert time.monotonic() < deadline and all(s.poll() is None for s in senders), [s.communicate() for s in senders]
        time.sleep(0.01)
    go.touch()  # both built and waiting: released together
    outputs = [s.communicate(timeout=120)[0] for s in senders]
    assert [s.returncode for s in senders] == [0, 0], outputs

    counts = [json.loads(next(line for line in out.splitlines() if line.startswith("COUNTS "))[7:]) for out in outputs]
    logged = [[line for line in out.splitlines() if "notification_logged" in line] for out in outputs]
    # Each process logged exactly what it reports having recorded, and together every notification once.
    assert [c["succeeded"] for c in counts] == [len(lines) for lines in logged]
    assert sum(c["succeeded"] for c in counts) == len(pending)
    wanted = set(pending)
    named = [nid for line in logged[0] + logged[1] for nid in UUID.findall(line) if nid in wanted]
    assert sorted(named) == sorted(pending)

    built = build(make_settings(database_url))
    try:
        assert built.services.notifications.unsent(10) == []
        with built.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute("SELECT state, attempts, COUNT(*) AS n FROM notification_sends GROUP BY state, attempts").fetchall()
        assert [(r["state"], r["attempts"], r["n"]) for r in rows] == [("LOGGED", 1, len(pending))]
    finally:
        asyncio.run(built.aclose())
