"""`subledger doctor`: what this machine's configuration reaches, one line per check.

Each check reads the same SUBLEDGER_* variables the processes read and reports OK, WARN
or FAIL with a detail; the command exits 1 when any check FAILs (docs/operations.md#doctor).
A configuration that is refused does not stop the other checks: they run on the values as
given, so an unknown time zone and an unreachable database are both reported. Nothing is
written anywhere, and no secret, key or password is printed (URLs are shown without theirs).
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource

from subledger.logging import redact_url
from subledger.settings import Settings, configuration_errors
from subledger.storage import Database

#: Seconds each network check waits (connect and answer) before it reports the host unreachable.
TIMEOUT = 3.0
#: The ledger's table (eventsourcing names it per database) and the read models' positions.
LEDGER_TABLE = {"sqlite": "stored_events", "postgres": "ledger_events"}
TRACKING_TABLE = "projection_tracking"
#: |this machine's clock - the database's| up to OK, then up to WARN; FAIL beyond.
SKEW_OK_SECONDS = 2.0
SKEW_WARN_SECONDS = 30.0


class Status(Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.check:<15} {' '.join(self.detail.split())}"


@dataclass(frozen=True)
class DatabaseClock:
    """The database's clock against this machine's, read in one round trip."""
    skew: float  # database - this machine, seconds
    uncertainty: float  # half the round trip


def load_configuration() -> tuple[Settings, Finding]:
    """The settings and the configuration's finding; when they are refused, the values as given
    (unvalidated, defaults for the rest), so that the other checks still run."""
    try:
        settings = Settings()
    except ValidationError as error:
        try:
            given = Settings.model_construct(**EnvSettingsSource(Settings)())
        except Exception:  # noqa: BLE001 - a value not even readable: the other checks use the defaults
            given = Settings.model_construct()
        return given, Finding("configuration", Status.FAIL, "; ".join(configuration_errors(error)))
    providers = ", ".join(settings.providers_named)
    kind = Database.from_url(settings.database_url).kind
    return settings, Finding("configuration", Status.OK,
                             f"{settings.env}; database {kind}; gateways {providers}; time zone {settings.timezone}")


def check_database(settings: Settings) -> tuple[Finding, DatabaseClock | None]:
    try:
        db = Database.from_url(str(settings.database_url))
    except ValueError:
        return Finding("database", Status.FAIL, "SUBLEDGER_DATABASE_URL must be sqlite:///PATH or "
                                               "postgresql://USER:PASS@HOST:PORT/DB"), None
    if db.kind == "sqlite":
        return _check_sqlite(db), None
    return _check_postgres(db)


def _check_sqlite(db: Database) -> Finding:
    path = Path(db.path)
    if not path.exists():
        return Finding("database", Status.WARN, f"SQLite file {path} does not exist yet: the first start creates it")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            events, tracked = _ledger_counts(conn, tables, LEDGER_TABLE["sqlite"])
        finally:
            conn.close()
    except sqlite3.Error as error:
        return Finding("database", Status.FAIL, f"SUBLEDGER_DATABASE_URL: cannot read SQLite file {path}: {error}")
    where = f"SQLite {sqlite3.sqlite_version} file {path}"
    return _schema_finding(where, tables & {LEDGER_TABLE["sqlite"]}, events, tracked)


def _check_postgres(db: Database) -> tuple[Finding, DatabaseClock | None]:
    import psycopg

    options = {} if "connect_timeout" in dict(db.options) else {"connect_timeout": int(TIMEOUT)}
    try:
        with psycopg.connect(db.psycopg_conninfo(), autocommit=True, **options) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            before = time.time()
            database_now = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0]
            after = time.time()
            tables = {row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (db.schema,))}
            events, tracked = _ledger_counts(conn, tables, LEDGER_TABLE["postgres"], schema=db.schema)
    except psycopg.Error as error:
        return Finding("database", Status.FAIL, db.unreachable(error)), None
    clock = DatabaseClock(skew=float(database_now) - (before + after) / 2, uncertainty=(after - before) / 2)
    where = f"PostgreSQL {version.split()[0]} at {db.host}:{db.port}/{db.dbname} (schema {db.schema})"
    return _schema_finding(where, tables & {LEDGER_TABLE["postgres"]}, events, tracked), clock


def _ledger_counts(conn: object, tables: set[str], ledger: str, schema: str | None = None) -> tuple[int, int]:
    """(events in the ledger, read models with a recorded position); 0 for a missing table."""
    prefix = f'"{schema}".' if schema else ""

    def count(table: str) -> int:
        if table not in tables:
            return 0
        return int(conn.execute(f"SELECT count(*) FROM {prefix}{table}").fetchone()[0] or 0)  # type: ignore[attr-defined]

    return count(ledger), count(TRACKING_TABLE)


def _schema_finding(where: str, ledger_tables: set[str], events: int, tracked: int) -> Finding:
    if not ledger_tables:
        return Finding("database", Status.WARN,
                       f"{where}: no ledger tables yet (`subledger migrate` creates them; in development, the first start)")
    return Finding("database", Status.OK, f"{where}: ledger of {events} events, {tracked} read model positions")
def check_redis(settings: Settings) -> list[Finding]:
    if not settings.redis_url:
        return [Finding("redis", Status.OK, "not configured: the daily runs fire inside `subledger serve`")]
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(str(settings.redis_url), socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    pool = client.connection_pool.connection_kwargs
    where = f"{pool.get('host', '?')}:{pool.get('port', '?')}"  # host and port only: the URL may carry a password
    try:
        version = client.info("server").get("redis_version", "?")
        # Each running worker keeps its own arq health key fresh (workers/arq_worker.py).
        workers = sum(1 for _ in client.scan_iter("arq:queue:health-check:*", count=100))
    except (RedisError, OSError) as error:
        return [Finding("redis", Status.FAIL,
                        f"SUBLEDGER_REDIS_URL: cannot reach Redis at {where} ({error}); check that it is up")]
    finally:
        client.close()
    found = [Finding("redis", Status.OK, f"Redis {version} at {where}")]
    if workers:
        found.append(Finding("workers", Status.OK, f"{workers} worker(s) running (fresh health keys)"))
    else:
        found.append(Finding("workers", Status.WARN,
                             "no worker is running: the 00:00 and 09:00 runs need `subledger worker`"))
    return found


def gateway_targets(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(provider, base URL or None for the in-process sandbox, the variable that sets it)."""
    named = [p.strip().lower() for p in str(settings.gateway).split(",") if p.strip()]
    targets: list[tuple[str, str | None, str]] = []
    if "sandbox" in named:
        targets.append(("sandbox", settings.sandbox_url or None, "SUBLEDGER_SANDBOX_URL"))
    if "toss" in named:
        targets.append(("toss", str(settings.toss_base_url), "SUBLEDGER_TOSS_BASE_URL"))
    return targets


def check_gateway(provider: str, url: str | None, variable: str) -> Finding:
    """A GET of the base URL without credentials: any HTTP answer shows the host is reachable."""
    import httpx

    from gateways.tls import client_ssl_context

    name = f"gateway {provider}"
    if url is None:
        return Finding(name, Status.OK, "in process (no network)")
    shown = redact_url(url)
    try:
        answer = httpx.get(url, timeout=TIMEOUT, follow_redirects=False, verify=client_ssl_context())
    except httpx.HTTPError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        return Finding(name, Status.FAIL, f"{variable}: cannot reach {shown} ({type(error).__name__}: {reason})")
    if answer.status_code >= 500:
        return Finding(name, Status.WARN, f"{shown} answers HTTP {answer.status_code}")
    return Finding(name, Status.OK, f"{shown} reachable (HTTP {answer.status_code})")


def check_timezone(settings: Settings, now: datetime) -> Finding:
    name = str(settings.timezone)
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return Finding("time zone", Status.FAIL,
                       f"SUBLEDGER_TIMEZONE: unknown time zone {name!r} (an IANA name such as Asia/Seoul)")
    local = now.astimezone(zone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return Finding("time zone", Status.OK, f"{name}: now {local:%Y-%m-%d %H:%M %Z (%z)}; next 00:00 run in "
                                           f"{_hours_minutes(midnight - local)}")


def _hours_minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def check_clock(clock: DatabaseClock | None, kind: str | None) -> Finding:
    utc = datetime.now(timezone.utc)
    if kind == "sqlite":
        return Finding("clock", Status.OK, f"{utc:%Y-%m-%d %H:%M:%S} UTC; SQLite has no clock of its own")
    if clock is None:
        return Finding("clock", Status.WARN, f"{utc:%Y-%m-%d %H:%M:%S} UTC; not compared: the database did not answer")
    return Finding("clock", skew_status(clock.skew),
                   f"{utc:%Y-%m-%d %H:%M:%S} UTC; PostgreSQL's clock differs by {clock.skew:+.3f} s "
                   f"(±{clock.uncertainty:.3f}); keep both synchronised (NTP)")


def skew_status(skew: float) -> Status:
    if abs(skew) <= SKEW_OK_SECONDS:
        return Status.OK
    return Status.WARN if abs(skew) <= SKEW_WARN_SECONDS else Status.FAIL


def diagnose() -> list[Finding]:
    settings, configuration = load_configuration()
    findings = [configuration]
    database, clock = check_database(settings)
    findings.append(database)
    findings.extend(check_redis(settings))
    findings.extend(check_gateway(*target) for target in gateway_targets(settings))
    findings.append(check_timezone(settings, datetime.now(timezone.utc)))
    try:
        kind: str | None = Database.from_url(str(settings.database_url)).kind
    except ValueError:
        kind = None
    findings.append(check_clock(clock, kind))
    return findings


def main(write: Callable[[str], object] = print) -> int:
    findings = diagnose()
    for finding in findings:
        write(finding.line())
    return 1 if any(f.status is Status.FAIL for f in findings) else 0
