"""`subledger bench ledger`: spend commands/s on PostgreSQL with concurrent callers,
against raw single-row INSERT transactions/s with as many connections into a
scratch table, measured in the same run (docs/performance.md)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import psycopg

from benchmarks.common import emit, run_threads
from domain.catalog import default_catalog
from domain.ledger import Ledger
from subledger.storage import Database


def raw_inserts(db: Database, callers: int, seconds: float) -> float:
    with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_scratch (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)")
    connections = [psycopg.connect(db.psycopg_conninfo(), autocommit=True) for _ in range(callers)]

    def make_step(i: int):
        conn = connections[i]
        return lambda: conn.execute("INSERT INTO bench_scratch (payload) VALUES (%s)", ("x" * 200,))

    try:
        done, elapsed = run_threads(callers, seconds, make_step)
    finally:
        for conn in connections:
            conn.close()
        with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_scratch")
    return done / elapsed


def spends(db: Database, callers: int, seconds: float) -> float:
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

    try:
        done, elapsed = run_threads(callers, seconds, make_step)
    finally:
        ledger.close()
    return done / elapsed


def run(database_url: str, callers: int = 16, seconds: float = 10.0) -> None:
    db = Database.from_url(database_url)
    if db.kind != "postgres":
        raise SystemExit("bench ledger needs a PostgreSQL SUBLEDGER_DATABASE_URL")
    # The schema keeps the benchmark's events apart from any real ledger on that database.
    db = Database.from_url(f"{database_url}{'&' if '?' in database_url else '?'}schema=bench_{uuid.uuid4().hex[:8]}")
    raw = raw_inserts(db, callers, seconds)
    commands = spends(db, callers, seconds)
    emit(
        "ledger",
        callers=callers,
        seconds=seconds,
        spend_commands_per_s=round(commands, 1),
        raw_inserts_per_s=round(raw, 1),
        ratio=round(commands / raw, 3),
        target_ratio=0.5,
    )
