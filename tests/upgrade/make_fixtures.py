"""Make the upgrade fixtures with the previous release's code (run it again only to re-make them):

    bash scripts/services.sh .venv/bin/python tests/upgrade/make_fixtures.py

The previous release (PREVIOUS, exported with `git archive`) serves a fresh SQLite file and a
fresh PostgreSQL schema, run from its own directory with this virtualenv; tests/upgrade/history.py
writes the same small history into both through its GraphQL API and reads it back. Written:
fixtures/previous.sqlite, fixtures/previous.postgres.sql (pg_dump, plain SQL, schema SCHEMA)
and fixtures/expected.json (what the previous release answered, per database).
"""
from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.upgrade.history import Served, python_argv, read_back, service_env, verify, write_history  # noqa: E402

PREVIOUS = "676a072"
SCHEMA = "subledger_previous"
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def export_previous(into: Path) -> Path:
    archive = subprocess.run(["git", "archive", PREVIOUS], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def history_of(previous: Path, database_url: str) -> dict:
    env = {**service_env(database_url), "PYTHONPATH": str(previous)}
    # The previous release has no `migrate` command: proof that its code, not this one's, runs.
    probe = subprocess.run([*python_argv(), "migrate"], env=env, cwd=previous, capture_output=True, text=True)
    assert probe.returncode != 0 and "No such command" in probe.stderr, probe.stderr
    served = Served(python_argv(), env, previous)
    try:
        write_history(served)
        found = read_back(served)
        report = verify(served)
        assert report["mismatches"] == [], report
    finally:
        served.stop()
    return found


def main() -> None:
    base = os.environ["SUBLEDGER_TEST_POSTGRES_URL"]
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        previous = export_previous(Path(tmp) / "previous")
        ledger = Path(tmp) / "ledger.db"
        expected["sqlite"] = history_of(previous, f"sqlite:///{ledger}")
        with sqlite3.connect(ledger) as connection:  # one self-contained file, no WAL beside it
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode=DELETE")
        (FIXTURES / "previous.sqlite").write_bytes(ledger.read_bytes())

        subprocess.run(["psql", base, "-q", "-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], check=True)
        expected["postgres"] = history_of(previous, f"{base}?schema={SCHEMA}")
        subprocess.run(["pg_dump", "--schema", SCHEMA, "--no-owner", "--no-privileges",
                        "--file", str(FIXTURES / "previous.postgres.sql"), base], check=True)
        subprocess.run(["psql", base, "-q", "-c", f"DROP SCHEMA {SCHEMA} CASCADE"], check=True)
    (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {', '.join(sorted(p.name for p in FIXTURES.iterdir()))}")


if __name__ == "__main__":
    main()
