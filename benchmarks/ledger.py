"""`subledger bench ledger`: spend commands/s on PostgreSQL with concurrent callers,
against raw single-row INSERT transactions/s with as many connections into a
scratch table, measured in the same run (docs/performance.md).

Beside the rates it reports what bounds them, read from /proc over each half: the
CPU per operation of this process and of PostgreSQL's server processes, the share of a
core this process held during the spends (one interpreter lock: near 1.0, the callers
wait on Python, not on the database), and the mean number of commands per group-commit
transaction."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from benchmarks.common import emit, run_threads
from benchmarks.cpu import CpuMeter, postgres_pids
from domain.catalog import default_catalog
from domain.ledger import Ledger
from subledger.storage import Database


@dataclass(frozen=True)
class Half:
    """One half of the bench: operations per second and CPU seconds per operation."""

    per_s: float
    own_cpu_ms: float
    postgres_cpu_ms: float
    own_cores: float


def _measured(callers: int, seconds: float, make_step: Any) -> Half:
    meter = CpuMeter({"own": lambda: [os.getpid()], "postgres": postgres_pids})
    done, elapsed = run_threads(callers, seconds, make_step)
    cpu = meter.read()
    return Half(done / elapsed, cpu["own"] * 1000 / done, cpu["postgres"] * 1000 / done, cpu["own"] / elapsed)


def raw_inserts(db: Database, callers: int, seconds: float) -> Half:
    with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_scratch (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)")
    connections = [psycopg.connect(db.psycopg_conninfo(), autocommit=True) for _ in range(callers)]

    def make_step(i: int):
        conn = connections[i]
        return lambda: conn.execute("INSERT INTO bench_scratch (payload) VALUES (%s)", ("x" * 200,))

    try:
        half = _measured(callers, seconds, make_step)
    finally:
        for conn in connections:
            conn.close()
        with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_scratch")
    return half


def spends(db: Database, callers: int, seconds: float) -> tuple[Half, float]:
    """The spends' half and its mean commands per group-commit transaction."""
    env = db.ledger_env(pool_size=callers)
    env["AGGREGATE_CACHE_MAXSIZE"] = "20000"
    ledger = Ledger(env=env, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"))
    now = datetime.now(timezone.utc)
    users = [f"bench-{uuid.uuid4().hex[:8]}-{i}" for i in range(callers)]
    for user in users:
        ledger.wallets.adjust_points(user, 10_000_000, "bench", now=now, actor="bench")

    def make_step(i: int):
        user = users[i]
        return lambda: ledger.wallets.spend_points(user, service=None, amount=1, service_id=uuid.uuid4().hex, now=now)

    committer = ledger.committer
    try:
        transactions, commands = committer.transactions, committer.commands
        half = _measured(callers, seconds, make_step)
        batch = (committer.commands - commands) / max(1, committer.transactions - transactions)
    finally:
        ledger.close()
    return half, batch


def run(database_url: str, callers: int = 16, seconds: float = 10.0) -> None:
    db = Database.from_url(database_url)
    if db.kind != "postgres":
        raise SystemExit("bench ledger needs a PostgreSQL SUBLEDGER_DATABASE_URL")
    # The schema keeps the benchmark's events apart from any real ledger on that database.
    db = Database.from_url(f"{database_url}{'&' if '?' in database_url else '?'}schema=bench_{uuid.uuid4().hex[:8]}")
    raw = raw_inserts(db, callers, seconds)
    commands, batch = spends(db, callers, seconds)
    emit(
        "ledger",
        callers=callers,
        seconds=seconds,
        spend_commands_per_s=round(commands.per_s, 1),
        raw_inserts_per_s=round(raw.per_s, 1),
        ratio=round(commands.per_s / raw.per_s, 3),
        target_ratio=0.5,
        spend_cpu_ms=round(commands.own_cpu_ms, 3),
        spend_process_cores=round(commands.own_cores, 2),
        spend_postgres_cpu_ms=round(commands.postgres_cpu_ms, 3),
        commands_per_transaction=round(batch, 2),
        raw_insert_cpu_ms=round(raw.own_cpu_ms, 3),
        raw_insert_postgres_cpu_ms=round(raw.postgres_cpu_ms, 3),
    )
