"""Upgrading a database made by the previous release (tests/upgrade/make_fixtures.py made the
fixtures with its code), on SQLite and PostgreSQL, with the commands of docs/upgrading.md:

- the new release, told not to migrate at start, refuses in one line naming `subledger migrate`;
- `subledger migrate` (two at once, then once more) brings the database up to date and
  records the versions; `subledger projections status` shows them;
- served over HTTP, the history reads back as the previous release answered it and
  `verifyLedger` finds no mismatch;
- a release that declares a new version of a read model (payments, bumped in the process
  that runs it) is refused until `subledger migrate` rebuilt that read model beside the live
  one and switched to it; the others are left as they were;
- in development, `serve` does that migration itself as it starts.
"""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.processes import run_group
from tests.upgrade.history import Served, python_argv, read_back, service_env, verify
from tests.upgrade.make_fixtures import FIXTURES, SCHEMA

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
#: This release with the payments read model declaring version 2 (what a release that changed its tables does).
BUMPED = [sys.executable, "-c", "import projections.payments as p; p.PaymentsProjection.version = 2; "
          "from subledger.cli import app; app(prog_name='subledger')"]
CHECK_ONLY = {"SUBLEDGER_MIGRATE_ON_START": "false"}


def kind_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


@pytest.fixture
def previous_database(database_url: str, tmp_path: Path) -> str:
    """The test's fresh database, loaded with the previous release's fixture."""
    if kind_of(database_url) == "sqlite":
        (tmp_path / "ledger.db").write_bytes((FIXTURES / "previous.sqlite").read_bytes())
        return database_url
    schema = parse_qs(urlparse(database_url).query)["schema"][0]
    dump = (FIXTURES / "previous.postgres.sql").read_text().replace(SCHEMA, schema)
    base = database_url.split("?")[0]
    subprocess.run(["psql", base, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=dump, text=True, check=True,
                   capture_output=True)
    return database_url


def command(argv: list[str], url: str, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_group([*argv, *args], env={**service_env(url), **(extra or {})}, cwd=ROOT, timeout=300)


def refused_naming_migrate(argv: list[str], url: str, needle: str) -> None:
    done = command(argv, url, "serve", "--port", "0", extra=CHECK_ONLY)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and "`subledger migrate`" in lines[0] and needle in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def served_history(argv: list[str], url: str) -> tuple[dict, dict]:
    served = Served(argv, {**service_env(url), **CHECK_ONLY}, ROOT)
    try:
        return read_back(served), verify(served)
    finally:
        served.stop()


def live_prefixes(url: str) -> dict[str, str]:
    query = "SELECT name, prefix FROM projection_generations"
    if kind_of(url) == "sqlite":
        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            return dict(connection.execute(query).fetchall())
    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0]) as connection:
        return dict(connection.execute(query.replace("projection_generations", f"{schema}.projection_generations")).fetchall())


def test_a_database_of_the_previous_release_upgrades(previous_database: str) -> None:
    url = previous_database
    refused_naming_migrate(python_argv(), url, "has not been migrated")

    # Two at once (compose may start it twice; an operator may too): one waits for the other.
    # This release stores the wallet history's rows differently (version 3, the previous one
    # recorded 1): whichever goes first rebuilds it, the other finds it done.
    first, second = (subprocess.Popen([*python_argv(), "migrate"], env=service_env(url), cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2))
    rebuilt = []
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        counted = re.search(r"migrated: 7 read models, (\d+) rebuilt", err)
        assert counted, err
        rebuilt.append(int(counted.group(1)))
        if counted.group(1) == "1":
            assert "wallet_history: changed (rebuilt and switched)" in out, out
    assert sorted(rebuilt) == [0, 1]
    again = command(python_argv(), url, "migrate")
    assert again.returncode == 0 and again.stdout.split() == [w for name in
        ("wallet_history", "payments", "subscriptions", "notifications", "aggregates", "analytics", "webhook_events")
        for w in (f"{name}:", "same")], again.stdout

    found, report = served_history(python_argv(), url)
    assert found == EXPECTED[kind_of(url)]
    assert report["mismatches"] == [] and report["eventsReplayed"] > 0
    # Only the read model whose version changed has new tables.
    assert list(live_prefixes(url)) == ["wallet_history"] and live_prefixes(url)["wallet_history"].startswith("g")

    status = command(python_argv(), url, "projections", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()[1:]}
    assert rows["payments"][2:] == ["0", "1", "1"]  # lag, declared, recorded
    assert rows["wallet_history"][2:] == ["0", "3", "3"]


def test_a_new_read_model_version_is_refused_then_rebuilt_by_migrate(previous_database: str) -> None:
    url = previous_database
    assert command(python_argv(), url, "migrate").returncode == 0
    history_prefix = live_prefixes(url)["wallet_history"]  # rebuilt by this release's own version change
    refused_naming_migrate(BUMPED, url, "read model payments is at version 1, this release needs 2")
    status = command(BUMPED, url, "projections", "status")
    assert status.returncode == 1 and "needs `subledger migrate`" in status.stdout

    done = command(BUMPED, url, "migrate")
    assert done.returncode == 0, done.stderr
    assert "payments: changed (rebuilt and switched)" in done.stdout
    assert done.stdout.count("same") == 6 and "migrated: 7 read models, 1 rebuilt" in done.stderr
    prefixes = live_prefixes(url)
    assert sorted(prefixes) == ["payments", "wallet_history"] and prefixes["payments"].startswith("g")
    assert prefixes["wallet_history"] == history_prefix  # not rebuilt again

    found, report = served_history(BUMPED, url)
    assert found == EXPECTED[kind_of(url)]
    assert report["mismatches"] == []
    status = command(BUMPED, url, "projections", "status")
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()[1:]}
    assert status.returncode == 0 and rows["payments"][2:] == ["0", "2", "2"], status.stdout
    # The release before the bump now finds a read model newer than it knows, and refuses too.
    refused_naming_migrate(python_argv(), url, "read model payments is at version 2, this release needs 1")


def test_development_serve_migrates_by_itself(previous_database: str) -> None:
    """The README's first command on an old database: development's `serve` migrates at start,
    rebuilding the read model whose version changed before it answers."""
    url = previous_database
    served = Served(BUMPED, service_env(url), ROOT)
    try:
        found, report = read_back(served), verify(served)
    finally:
        served.stop()
    assert found == EXPECTED[kind_of(url)] and report["mismatches"] == []
    assert sorted(live_prefixes(url)) == ["payments", "wallet_history"]
