"""Rebuilding every read model of a 200,000-event ledger (`subledger projections rebuild
--all`, its own process) while clients keep querying the API: no query fails or
answers differently, the rebuilt tables equal the old ones row for row, and the
audit finds nothing. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.rebuild import populate
from subledger.app import build
from tests.api.conftest import JWT_SECRET, Api, make_settings
from tests.read_model_tables import base_tables, dump, generations

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 200_000
QUERIES = [
    ("wallet { transactions(first: 20) { totalCount items { id amount balanceAfter } } }", "user"),
    ("payments(first: 10) { id status amount refundedAmount }", "user"),
    ("notifications(first: 10) { id kind }", "user"),
    ("events(userId: $u, first: 20) { position type }", "auditor"),
    ('subscriptionMetrics(from: "2025-01-01", to: "2025-12-31") { revenue { total byPlan { planId revenue } } payments { refunds } }', "analyst"),
    ("projections { name headPosition }", "analyst"),
]


def ask(api: Api, index: int, user: str) -> dict:
    field, scope = QUERIES[index]
    variables = "($u: ID)" if "$u" in field else ""
    body = api.post(f"query{variables} {{ {field} }}", {"u": user} if variables else {}, api.token(user, scope))
    if body.get("errors"):
        raise AssertionError(body["errors"])
    return body["data"]


def fill(database_url: str) -> None:
    """The ledger and its read models as the API will find them, written before it starts:
    projections following 200,000 saves as they happen would cost the test minutes, and a
    rebuild from 0 fills every read model in one pass over the log."""
    filler = build(make_settings(database_url))  # not served: no projection follows
    try:
        populate(filler.ledger, EVENTS, tag="load")
        filler.read_models.rebuild(None)
    finally:
        asyncio.run(filler.aclose())


def test_rebuild_of_every_read_model_under_query_load(api_factory, database_url: str) -> None:
    fill(database_url)
    api: Api = api_factory()
    api.settle_read_models(timeout=900)
    assert api.built.ledger.recorder.max_notification_id() >= EVENTS
    bases = base_tables(api.built)
    before, live_before = dump(api.built, bases), generations(api.built)
    users = [f"bench-load-{n}" for n in range(0, 4000, 97)]
    expected = {(i, u): ask(api, i, u) for i in range(len(QUERIES)) for u in users[:3]}

    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET}
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load(worker: int) -> None:
        n = worker
        while not stop.is_set():
            index, user = n % len(QUERIES), users[n % len(users)]
            try:
                answer = ask(api, index, user)
                if (index, user) in expected and answer != expected[(index, user)]:
                    failures.append(f"query {index} for {user} answered differently")
                answered[0] += 1
            except Exception as error:  # every failure is a finding, whatever its kind
                failures.append(repr(error))
            n += 7

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        rebuild = subprocess.run(
            [sys.executable, "-m", "subledger.cli", "projections", "rebuild", "--all"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )
        during = answered[0]
        time.sleep(1)  # the API has moved to the new tables and the old ones are gone: still answering
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert rebuild.returncode == 0, rebuild.stderr
    assert failures == []
    assert during > 50 and answered[0] > during

    switched = generations(api.built)
    assert set(switched) == {r.name for r in api.built.runners} and all(switched[n] != live_before.get(n, "") for n in switched)
    assert dump(api.built, bases) == before
    # The audit of a ledger this size outlasts an HTTP request: the command, as an operator runs it.
    audit = subprocess.run(
        [sys.executable, "-m", "subledger.cli", "audit", "verify"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    assert audit.returncode == 0 and audit.stdout == "", audit.stdout + audit.stderr
    # One progress line per phase: a new one was made on every batch (600 lines for 300,000 events, and a third of the time).
    phases = [line.split()[0] for line in audit.stderr.splitlines() if line.startswith(("rebuild ", "replay "))]
    assert sorted(phases) == ["rebuild", "replay"], audit.stderr[-3000:]
    assert f"{api.built.ledger.recorder.max_notification_id()} events replayed" in audit.stderr.replace(",", "")
