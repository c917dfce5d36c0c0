"""Starting against servers that cannot be used: each command refuses in one line on stderr that
names the variable and the host, exit 2, no traceback, no password; and the database URL's
libpq options (sslmode and the rest) reach every connection instead of being dropped."""
from __future__ import annotations

import socket
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from subledger.app import build
from subledger.settings import Settings
from subledger.storage import Database
from tests.integration.test_production_mode import run

PASSWORD = "pw-" + uuid.uuid4().hex


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line(done, variable: str, host: str) -> str:  # noqa: ANN001
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"subledger: {variable}"), done.stderr
    assert host in lines[0], lines[0]
    assert PASSWORD not in done.stderr + done.stdout
    return lines[0]


@pytest.mark.parametrize("command", [["serve"], ["projector"], ["audit", "verify"]])
def test_unreachable_postgres_is_refused_in_one_line_naming_the_host(command: list[str]) -> None:
    port = closed_port()
    url = f"postgresql://subledger:{PASSWORD}@127.0.0.1:{port}/subledger"
    done = run({"SUBLEDGER_DATABASE_URL": url}, *command)
    line = assert_one_line(done, "SUBLEDGER_DATABASE_URL", f"127.0.0.1:{port}")
    assert "Connection refused" in line


def test_a_login_postgres_refuses_is_refused_in_one_line(postgres_url: str) -> None:
    parsed = urlparse(postgres_url)
    url = f"postgresql://no_such_role:{PASSWORD}@{parsed.hostname}:{parsed.port}{parsed.path}"
    done = run({"SUBLEDGER_DATABASE_URL": url}, "serve")
    line = assert_one_line(done, "SUBLEDGER_DATABASE_URL", f"{parsed.hostname}:{parsed.port}")
    assert "no_such_role" in line


def test_an_unknown_url_option_is_refused_not_dropped() -> None:
    url = f"postgresql://subledger:{PASSWORD}@127.0.0.1:5432/subledger?sslmod=require"
    done = run({"SUBLEDGER_DATABASE_URL": url}, "serve")
    line = assert_one_line(done, "SUBLEDGER_DATABASE_URL", "sslmod")
    assert "invalid connection option" in line


def test_url_options_reach_the_ledger_and_the_read_models(postgres_url: str) -> None:
    name = "subledger-" + uuid.uuid4().hex[:8]
    built = build(Settings(database_url=f"{postgres_url}&application_name={name}&sslmode=disable"))
    try:
        with built.ledger.factory.datastore.get_connection() as conn:
            ledger = conn.execute("SELECT current_setting('application_name')").fetchone()
        with built.view_db._pool.connection() as conn:
            views = conn.execute("SELECT current_setting('application_name')").fetchone()
        assert list(ledger.values()) == [name]
        assert list(views.values()) == [name]
        with psycopg.connect(Database.from_url(postgres_url).psycopg_conninfo()) as conn:
            seen = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()
        assert seen[0] >= 2  # both pools' connections, as the server sees them
    finally:
        built.view_db.close()
        built.ledger.close()


def test_url_options_are_refused_when_the_server_cannot_meet_them(postgres_url: str) -> None:
    # The throw-away test server has no TLS: sslmode=require must fail, not fall back to plain text.
    done = run({"SUBLEDGER_DATABASE_URL": f"{postgres_url}&sslmode=require"}, "serve")
    line = assert_one_line(done, "SUBLEDGER_DATABASE_URL", urlparse(postgres_url).hostname)
    assert "SSL" in line


def test_worker_check_with_redis_down_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    done = run({"SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
                "SUBLEDGER_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"}, "worker", "--check")
    assert_one_line(done, "SUBLEDGER_REDIS_URL", f"127.0.0.1:{port}")


def test_the_development_token_is_printed_on_one_line(tmp_path: Path) -> None:
    from benchmarks.deployment import Process, free_port

    port = free_port()
    process = Process(["serve", "--port", str(port)], run_env(tmp_path), tmp_path / "serve.log",
                      f"http://127.0.0.1:{port}", port).start()
    try:
        lines = process.log().splitlines()
    finally:
        process.stop()
    shown = lines.index(next(line for line in lines if line.startswith("development token"))) + 1
    token = lines[shown]
    assert token.count(".") == 2 and len(token) > 100, lines  # header.payload.signature, whole


def run_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(SUBLEDGER_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}", COLUMNS="60")
    return env
