"""`subledger doctor` as a process, on both databases: with real PostgreSQL, Redis and a gateway
look-alike up every check is OK (exit 0); with them on closed ports each one FAILs in one line
naming its variable and host, without the password or the gateway's key (exit 1); an unknown
time zone FAILs while the other checks still run; an empty database is a WARN, not a FAIL."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from subledger.app import build
from subledger.doctor import Status, skew_status
from subledger.settings import Settings
from tests.integration.gateway_server import closed_port_url, serve_sandbox
from tests.integration.test_production_mode import run

PASSWORD = "pw-" + secrets.token_hex(8)
TOSS_KEY = "test_sk_" + secrets.token_hex(12)


def lines_of(done) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """check -> (status, detail), from the one line per check doctor prints on stdout."""
    found = {}
    for line in done.stdout.splitlines():
        status, check, detail = line[:4].strip(), line[6:21].strip(), line[22:]
        assert status in ("OK", "WARN", "FAIL"), line
        found[check] = (status, detail)
    return found


def redis_db(url: str, number: int) -> str:
    """The same server, another database: no other test's worker health keys in it."""
    return url.rsplit("/", 1)[0] + f"/{number}"


@pytest.fixture(scope="module")
def gateway() -> str:
    with serve_sandbox() as url:
        yield url


def with_ledger(database_url: str) -> str:
    built = build(Settings(database_url=database_url))
    built.view_db.close()
    built.ledger.close()
    return database_url


def test_everything_up_is_ok(database_url: str, redis_url: str, gateway: str) -> None:
    env = {"SUBLEDGER_DATABASE_URL": with_ledger(database_url), "SUBLEDGER_REDIS_URL": redis_db(redis_url, 9),
           "SUBLEDGER_GATEWAY": "toss", "SUBLEDGER_TOSS_SECRET_KEY": TOSS_KEY, "SUBLEDGER_TOSS_BASE_URL": gateway,
           "SUBLEDGER_TIMEZONE": "Asia/Seoul"}
    done = run(env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    found = lines_of(done)
    assert found["configuration"][0] == "OK"
    status, detail = found["database"]
    assert status == "OK" and "ledger of 0 events" in detail, detail
    assert ("PostgreSQL" if database_url.startswith("postgresql") else "SQLite") in detail
    assert found["redis"][0] == "OK" and "Redis " in found["redis"][1]
    assert found["workers"] == ("WARN", "no worker is running: the 00:00 and 09:00 runs need `subledger worker`")
    assert found["gateway toss"][0] == "OK" and gateway in found["gateway toss"][1]
    assert found["time zone"][0] == "OK" and "Asia/Seoul: now" in found["time zone"][1]
    assert found["clock"][0] == "OK", found["clock"]
    assert TOSS_KEY not in done.stdout + done.stderr


def test_an_empty_database_is_a_warning(database_url: str) -> None:
    done = run({"SUBLEDGER_DATABASE_URL": database_url}, "doctor")
    found = lines_of(done)
    assert done.returncode == 0, done.stdout + done.stderr
    status, detail = found["database"]
    assert status == "WARN" and ("no ledger tables yet" in detail or "does not exist yet" in detail), detail


def test_unreachable_servers_fail_in_one_line_each(tmp_path: Path) -> None:
    dead = closed_port_url().removeprefix("http://")
    env = {"SUBLEDGER_DATABASE_URL": f"postgresql://subledger:{PASSWORD}@{dead}/subledger",
           "SUBLEDGER_REDIS_URL": f"redis://:{PASSWORD}@{dead}/0",
           "SUBLEDGER_GATEWAY": "toss", "SUBLEDGER_TOSS_SECRET_KEY": TOSS_KEY,
           "SUBLEDGER_TOSS_BASE_URL": f"http://{dead}"}
    done = run(env, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    found = lines_of(done)
    assert found["configuration"][0] == "OK"
    for check, variable in (("database", "SUBLEDGER_DATABASE_URL"), ("redis", "SUBLEDGER_REDIS_URL"),
                            ("gateway toss", "SUBLEDGER_TOSS_BASE_URL")):
        status, detail = found[check]
        assert status == "FAIL" and detail.startswith(variable) and dead in detail, (check, detail)
    assert found["clock"][0] == "WARN"
    assert PASSWORD not in done.stdout + done.stderr
    assert TOSS_KEY not in done.stdout + done.stderr


def test_an_unreadable_sqlite_file_fails(tmp_path: Path) -> None:
    not_a_database = tmp_path / "ledger.db"
    not_a_database.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    done = run({"SUBLEDGER_DATABASE_URL": f"sqlite:///{not_a_database}"}, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    status, detail = lines_of(done)["database"]
    assert status == "FAIL" and detail.startswith(f"SUBLEDGER_DATABASE_URL: cannot read SQLite file {not_a_database}")
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unknown_time_zone_fails_and_the_rest_is_still_checked(database_url: str) -> None:
    done = run({"SUBLEDGER_DATABASE_URL": with_ledger(database_url), "SUBLEDGER_TIMEZONE": "Mars/Olympus_Mons"},
               "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    found = lines_of(done)
    assert found["configuration"][0] == "FAIL" and "SUBLEDGER_TIMEZONE" in found["configuration"][1]
    assert found["time zone"] == (
        "FAIL", "SUBLEDGER_TIMEZONE: unknown time zone 'Mars/Olympus_Mons' (an IANA name such as Asia/Seoul)")
    assert found["database"][0] == "OK", found["database"]


def test_a_refused_configuration_is_one_line() -> None:
    done = run({"SUBLEDGER_ENV": "production", "SUBLEDGER_DATABASE_URL": "mysql://root:hunter2-pass@db/x"}, "doctor")
    assert done.returncode == 1
    found = lines_of(done)
    assert found["configuration"][0] == "FAIL" and "SUBLEDGER_DATABASE_URL" in found["configuration"][1]
    assert found["database"][0] == "FAIL"
    assert "hunter2-pass" not in done.stdout + done.stderr


@pytest.mark.parametrize(("skew", "status"), [(0.4, Status.OK), (-2.0, Status.OK), (5.0, Status.WARN),
                                              (-30.0, Status.WARN), (31.0, Status.FAIL), (-3600.0, Status.FAIL)])
def test_clock_skew_thresholds(skew: float, status: Status) -> None:
    assert skew_status(skew) is status
