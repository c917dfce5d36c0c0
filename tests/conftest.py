"""Shared fixtures: every integration and API test runs on SQLite and on PostgreSQL.

PostgreSQL comes from SUBLEDGER_TEST_POSTGRES_URL (scripts/test starts a
throw-away server and sets it); each test gets its own schema, so tests share
one database without seeing each other. Without the variable the PostgreSQL
half is skipped locally, and fails under CI (CI=true), where it must exist.

Under CI (or SUBLEDGER_TEST_REPORT_AT_ONCE=1) a failing test's report is printed the
moment it fails, not only in the summary at the end: a run cut short by CI's time
limit still shows why each test before the cut failed.
"""
from __future__ import annotations

import os
import sys
import uuid

import pytest

POSTGRES_URL = os.environ.get("SUBLEDGER_TEST_POSTGRES_URL")


def _redis_for_this_worker(url: str | None) -> str | None:
    """Under pytest-xdist (scripts/test runs the suite in several worker processes) each
    worker gets a Redis database of its own, numbered after the worker (gw0 → 0, gw1 → 1…),
    so one worker's FLUSHDB or queue never reaches another's. Databases 9 and 12, which two
    test files pick by number, are left out of the range; a test file runs whole on one
    worker (--dist loadfile), so those two never meet themselves."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    index = int(worker[2:])
    free = [n for n in range(16) if n not in (9, 12)]  # scripts/services.sh starts Redis with 16 databases
    if index >= len(free):
        raise RuntimeError(f"pytest-xdist worker {worker}: at most {len(free)} workers get a Redis database each")
    number = free[index]
    base, _, _ = url.rpartition("/")
    os.environ["SUBLEDGER_TEST_REDIS_URL"] = f"{base}/{number}"
    return os.environ["SUBLEDGER_TEST_REDIS_URL"]


REDIS_URL = _redis_for_this_worker(os.environ.get("SUBLEDGER_TEST_REDIS_URL"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under pytest-xdist the controller receives every worker's reports too: it prints them once.
    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    if report.failed and (os.environ.get("CI") or os.environ.get("SUBLEDGER_TEST_REPORT_AT_ONCE")):
        print(f"\n=== {report.nodeid} failed ({report.when}) ===\n{report.longreprtext}\n", file=sys.__stderr__, flush=True)


def _require(url: str | None, what: str) -> str:
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI (run the suite with scripts/test)")
    pytest.skip(f"{what} not set: run the suite with scripts/test to include it")


@pytest.fixture(autouse=True)
def _logging_restored() -> object:
    """Each test starts with the logging set-up the session had: a test that configures
    logging (configure_logging: structlog through stdlib handlers) must not change where
    the next test's log lines go (several tests read them from stdout)."""
    import logging

    import structlog

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database for one test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    base = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url() -> str:
    base = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url() -> str:
    return _require(REDIS_URL, "SUBLEDGER_TEST_REDIS_URL")
