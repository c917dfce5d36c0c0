"""`subledger projections rebuild`, `audit verify|replay` and `projector` as processes, on SQLite and PostgreSQL.

The ledger is filled in the test through the domain (benchmarks.rebuild.populate
and ledger commands); the commands run as real subprocesses on the same database.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from benchmarks.rebuild import populate
from domain.ids import wallet_id
from projections.generations import tables_with_prefix
from subledger.app import build
from tests.api.conftest import JWT_SECRET, make_settings
from tests.read_model_tables import base_tables, dump, generations

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def built(database_url: str):
    built = build(make_settings(database_url))
    yield built
    built.read_models.close()
    built.view_db.close()
    built.ledger.close()


def env_for(database_url: str) -> dict[str, str]:
    return {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET, "SUBLEDGER_CLOCK": "test"}


def cli(database_url: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "subledger.cli", *args], env=env_for(database_url), cwd=ROOT,
        capture_output=True, text=True, timeout=timeout,
    )


def test_rebuild_all_switches_to_tables_equal_row_for_row(built, database_url):
    populate(built.ledger, 2500)
    built.catch_up()
    bases = base_tables(built)
    before = dump(built, bases)
    assert sum(len(v) for v in before.values()) > 2000

    done = cli(database_url, "projections", "rebuild", "--all")
    assert done.returncode == 0, done.stderr
    assert "events/s" in done.stderr
    switched = generations(built)
    assert sorted(switched) == sorted(r.name for r in built.runners) and all(switched.values())
    assert dump(built, bases) == before
    head = built.ledger.recorder.max_notification_id()
    assert all(row["position"] == head for row in built.read_models.status())
    # The old tables were dropped once every process could have moved over.
    with built.view_db.transaction(readonly=True) as cursor:
        assert cursor.execute("SELECT COUNT(*) AS n FROM projection_rebuilds").fetchone()["n"] == 0
        assert not [t for t in tables_with_prefix(cursor, built.view_db.kind, "wallet_") if t == "wallet_transactions"]

    refused = cli(database_url, "projections", "rebuild", "no_such_model")
    assert refused.returncode == 2 and "unknown projection" in refused.stderr
    assert generations(built) == switched


def test_a_killed_rebuild_leaves_the_live_read_model_untouched(built, database_url):
    populate(built.ledger, 12000)
    built.catch_up()
    bases = base_tables(built)
    before, live_before = dump(built, bases), generations(built)
    positions = built.read_models.status()

    rebuild = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "projections", "rebuild", "--all", "--batch-size", "10"],
        env=env_for(database_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert rebuild.poll() is None, "the rebuild finished before it could be killed half-way"
            assert time.monotonic() < deadline
            with built.view_db.transaction(readonly=True) as cursor:
                building = cursor.execute(
                    "SELECT MIN(t.position) AS p FROM projection_rebuilds r"
                    " JOIN projection_tracking t ON t.name = r.prefix || r.name WHERE r.state = 'building'"
                ).fetchone()["p"]
            if building and building > 0:
                break
            time.sleep(0.01)
        rebuild.send_signal(signal.SIGKILL)
        rebuild.wait(30)
    finally:
        if rebuild.poll() is None:
            rebuild.kill()
    assert 0 < building < built.ledger.recorder.max_notification_id()
    assert generations(built) == live_before
    assert dump(built, bases) == before
    assert built.read_models.status() == positions

    again = cli(database_url, "projections", "rebuild", "--all")
    assert again.returncode == 0, again.stderr
    assert dump(built, bases) == before
    live = set(generations(built).values())
    with built.view_db.transaction(readonly=True) as cursor:
        # The killed rebuild's half-filled copies are gone too.
        assert cursor.execute("SELECT COUNT(*) AS n FROM projection_rebuilds").fetchone()["n"] == 0
        stray = [t for t in tables_with_prefix(cursor, built.view_db.kind, "g") if not any(t.startswith(p) for p in live)]
    assert stray == []


def test_audit_verify_exits_1_and_names_a_corrupted_row(built, database_url):
    populate(built.ledger, 600)
    built.catch_up()
    clean = cli(database_url, "audit", "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""

    table = built.read_models.runner("payments").current().table
    with built.view_db.transaction() as cursor:
        victim = cursor.execute(f"SELECT payment_id FROM {table} ORDER BY seq LIMIT 1").fetchone()["payment_id"]
        cursor.execute(f"UPDATE {table} SET amount = amount + 1 WHERE payment_id = ?", (victim,))
    found = cli(database_url, "audit", "verify")
    assert found.returncode == 1
    lines = found.stdout.splitlines()
    assert any("payments" in line and victim in line and "amount" in line for line in lines), found.stdout
    assert all(victim in line for line in lines)


def test_audit_replay_prints_events_and_state_as_of(built, database_url):
    ledger = built.ledger
    for hours, amount in ((0, 100), (1, 250), (2, -50)):
        ledger.wallets.adjust_points("u-replay", amount, "audit", now=T0 + timedelta(hours=hours), actor="ops")
    aggregate = str(wallet_id("u-replay"))

    halfway = cli(database_url, "audit", "replay", "--aggregate", aggregate, "--as-of", (T0 + timedelta(hours=1, minutes=30)).isoformat())
    assert halfway.returncode == 0, halfway.stderr
    document = json.loads(halfway.stdout)
    assert (document["aggregateId"], document["aggregateType"]) == (aggregate, "Wallet")
    assert [(e["version"], e["type"]) for e in document["events"]] == [(1, "Opened"), (2, "Credited"), (3, "Credited")]
    assert document["state"]["lifetime_earned"] == 350 and document["state"]["version"] == 3

    now = json.loads(cli(database_url, "audit", "replay", "--aggregate", aggregate).stdout)
    assert len(now["events"]) == 4 and now["state"]["lifetime_spent"] == 50

    assert cli(database_url, "audit", "replay", "--aggregate", "not-an-id").returncode == 2
    assert cli(database_url, "audit", "replay", "--aggregate", aggregate, "--as-of", "2026-03-01T00:00:00").returncode == 2
    assert cli(database_url, "audit", "replay", "--aggregate", str(wallet_id("nobody"))).returncode == 1
    before_any = cli(database_url, "audit", "replay", "--aggregate", aggregate, "--as-of", (T0 - timedelta(days=1)).isoformat())
    assert before_any.returncode == 1


def imported_modules(importtime_log: str) -> set[str]:
    """The modules named in Python's import log (`-X importtime`, on stderr)."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:")}


#: What only the API needs (the GraphQL stack, the token checks): a process that serves no
#: GraphQL never imports these.
API_ONLY = {"strawberry", "graphql", "schema.build", "schema.context", "subledger.app", "schema.auth", "schema.jwks"}


def test_projector_follows_the_ledger_and_stops_on_sigterm(built, database_url, tmp_path):
    # Its import log goes to a file: a pipe would fill (and block the start) before it is read.
    with open(tmp_path / "stderr", "w+") as stderr_file:
        projector = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "subledger.cli", "projector"],
            env=env_for(database_url), cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
        )
        stdout, stderr = _follow_then_stop(projector, built, stderr_file)
    assert projector.returncode == 0, stderr[-3000:]
    assert "projector_stopped" in stdout + stderr
    imported = imported_modules(stderr)
    assert "projections.follower" in imported and not API_ONLY & imported  # subledger/core.py, not app.py


def _follow_then_stop(projector: subprocess.Popen, built, stderr_file) -> tuple[str, str]:
    try:
        populate(built.ledger, 800)
        head = built.ledger.recorder.max_notification_id()
        deadline = time.monotonic() + 120
        while any(row["position"] < head for row in built.read_models.status()):
            assert projector.poll() is None, open(stderr_file.name).read()[-3000:]
            assert time.monotonic() < deadline, built.read_models.status()
            time.sleep(0.05)
        projector.send_signal(signal.SIGTERM)
        stdout, _ = projector.communicate(timeout=60)
    finally:
        if projector.poll() is None:
            projector.kill()
    stderr_file.seek(0)
    return stdout, stderr_file.read()


def test_the_commands_that_serve_no_graphql_start_without_the_http_side(built, database_url):
    """`projections rebuild`, `audit verify` and `audit replay` open the ledger and the read
    models only (subledger/read_side.py); `audit reconcile` and the arq worker's start-up
    build the service without its HTTP app (subledger/core.py), as the projector does (its
    test above). Strawberry and the GraphQL schema (0.5–1.0 s of CPU per start) are never
    imported: Python's own import log of each real command says so."""
    wallet = str(wallet_id("import-check"))
    built.ledger.wallets.adjust_points("import-check", 10, "gift", now=T0, actor="ops")
    worker_start = (
        "import asyncio\n"
        "from workers.arq_worker import shutdown, startup\n"
        "async def main():\n"
        "    ctx = {}\n"
        "    await startup(ctx)\n"
        "    print('built:', type(ctx['built']).__module__, ctx['built'].http)\n"
        "    await shutdown(ctx)\n"
        "asyncio.run(main())\n"
    )
    commands = [
        ("-m", "subledger.cli", "audit", "verify"),
        ("-m", "subledger.cli", "audit", "replay", "--aggregate", wallet),
        ("-m", "subledger.cli", "projections", "rebuild", "wallet_history"),
        ("-m", "subledger.cli", "audit", "reconcile"),
        ("-c", worker_start),
    ]
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *args], env={**env_for(database_url), "SUBLEDGER_WORKER_TICK_SECONDS": "1"},
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        imported = imported_modules(done.stderr)
        assert "domain.ledger" in imported and "projections.read_models" in imported  # the log is there
        assert not API_ONLY & imported, args
    assert "built: subledger.core None" in done.stdout.splitlines()  # the worker started, with no HTTP app
