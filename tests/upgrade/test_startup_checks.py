"""Production processes do not create tables: on a database `subledger migrate` has not
prepared, `serve`, `worker` and `projector` each refuse in one line naming the command (exit 2)
and leave the database without a single table; after `subledger migrate`, serve starts."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from gateways.tls import client_ssl_context
from tests.integration.test_production_mode import assert_refused, production_env, run, serve, stop


def tables(url: str) -> list[str]:
    if url.startswith("sqlite"):
        path = url[len("sqlite:///"):]
        if not Path(path).exists():
            return []
        with sqlite3.connect(path) as connection:
            return [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0]) as connection:
        rows = connection.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return [r[0] for r in rows]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"], ["projector"]])
def test_production_refuses_an_unmigrated_database_and_creates_nothing(
    database_url: str, tmp_path: Path, command: list[str]
) -> None:
    env = {**production_env(tmp_path), "SUBLEDGER_DATABASE_URL": database_url,
           "SUBLEDGER_REDIS_URL": "redis://127.0.0.1:9/0"}
    done = run(env, *command)
    assert_refused(done, "`subledger migrate`", env)
    assert "has not been migrated" in done.stderr
    assert tables(database_url) == []


def test_production_serves_once_migrated(database_url: str, tmp_path: Path) -> None:
    env = {**production_env(tmp_path), "SUBLEDGER_DATABASE_URL": database_url}
    migrated = run(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert {"schema_versions", "user_keys", "scheduled_runs", "payments"} <= set(tables(database_url))
    process, url = serve({**env, "SUBLEDGER_MIGRATE_ON_START": "false"})
    try:
        assert httpx.get(f"{url}/readyz", timeout=10, verify=client_ssl_context()).status_code == 200
    finally:
        output = stop(process)
    assert "Traceback" not in output
