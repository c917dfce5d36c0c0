"""`subledger migrate`: every table the product needs, and the read models' versions.

Run once per release before the processes start (compose runs it as the `migrate` service).
It creates what is missing (the product's tables, the ledger's through eventsourcing, every
read model's), rebuilds each read model whose declared version differs from the recorded one
beside its live tables and switches to it (projections/rebuild.py), then records the versions
(projections/versions.py). Safe to run twice (a second run finds nothing to do) and at once
from several places: PostgreSQL serialises runs on an advisory lock of the schema, SQLite on
a lock file beside the database.

A process that does not migrate at start (production; docs/upgrading.md) only checks the
recorded versions and refuses in one line naming this command.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections import versions
from projections.database import ViewDatabase
from projections.generations import GENERATIONS_DDL
from projections.rebuild import REBUILDS_DDL, Rebuilder
from projections.runner import TRACKING_DDL, ProjectionRunner
from projections.webhook_deliveries import DDL as WEBHOOK_DELIVERIES_DDL
from subledger import user_keys, webhook_endpoints
from subledger.refusal import StartupRefused
from subledger.storage import Database
from workers import run_records

log = logging.getLogger(__name__)

#: The version of the product's own tables (below) and the ledger's; bump with a change
#: `CREATE ... IF NOT EXISTS` cannot make, or one an older release's database lacks.
#: 2: the ledger's insert function on PostgreSQL (subledger/pg_recorder.py).
TABLES_VERSION = 2
PRODUCT_DDL: tuple[str, ...] = (
    versions.VERSIONS_DDL, TRACKING_DDL, GENERATIONS_DDL, REBUILDS_DDL,
    user_keys.DDL, webhook_endpoints.DDL, *WEBHOOK_DELIVERIES_DDL, run_records.DDL,
)
COMMAND = "subledger migrate"


@dataclass
class Report:
    changes: dict[str, versions.Change] = field(default_factory=dict)

    @property
    def rebuilt(self) -> list[str]:
        return [name for name, change in self.changes.items() if change is versions.Change.CHANGED]

    def lines(self) -> list[str]:
        return [f"{name}: {change.value}" + (" (rebuilt and switched)" if change is versions.Change.CHANGED else "")
                for name, change in self.changes.items()]


def _lock_key(schema: str) -> int:
    """A signed 64-bit advisory lock key of the schema: one deployment's runs wait for each other only."""
    return int.from_bytes(hashlib.sha256(f"subledger migrate {schema}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def migration_lock(db: Database) -> Iterator[None]:
    """Held for a whole migration: PostgreSQL's advisory lock (released if the process dies), or
    on SQLite an exclusive lock of `<database>.migrate-lock`."""
    if db.kind == "sqlite":
        with open(f"{db.path}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    import psycopg

    db.ensure_schema()
    with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_lock_key(db.schema),))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(db.schema),))


def create_product_tables(view_db: ViewDatabase) -> None:
    with view_db.transaction() as cursor:
        for statement in PRODUCT_DDL:
            cursor.execute(statement)


def migrate_read_models(
    ledger: Any, view_db: ViewDatabase, projections: Sequence[Any], *, grace_seconds: float | None = None
) -> Report:
    """Create the new read models, keep the same ones (adding what IF NOT EXISTS adds), rebuild
    and switch the changed ones; record every version and the product tables' version."""
    with view_db.transaction(readonly=True) as cursor:
        changes = versions.plan(cursor, projections)
    changed = [p for p in projections if changes[p.name] is versions.Change.CHANGED]
    # A changed read model's live tables are left as they are: the rebuild makes new ones beside them.
    runners = [ProjectionRunner(ledger, p, view_db, create=p not in changed) for p in projections]
    options = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
    rebuilder = Rebuilder(ledger, view_db, runners, create=False, **options)
    try:
        # Old tables a rebuild left to be dropped later (a migration at start does not wait for them).
        rebuilder.drop_retired(rebuilder.grace_seconds)
        if changed:
            log.warning("rebuilding read models of a new version: %s", ", ".join(p.name for p in changed))
            rebuilder.rebuild([p.name for p in changed], wait_for_drop=grace_seconds is not None)
    finally:
        rebuilder.close()
    with view_db.transaction() as cursor:
        for projection in projections:
            versions.record_read_model(cursor, projection)
        versions.record(cursor, versions.TABLES, TABLES_VERSION)
    return Report(changes)


def migrate(
    db: Database, view_db: ViewDatabase, open_ledger: Callable[[bool], Any], projections: Sequence[Any],
    *, grace_seconds: float | None = None,
) -> tuple[Any, Report]:
    """The whole migration under the lock; returns the opened ledger (`open_ledger(create_tables)`)."""
    with migration_lock(db):
        create_product_tables(view_db)
        ledger = open_ledger(True)  # eventsourcing creates the ledger's tables
        try:
            return ledger, migrate_read_models(ledger, view_db, projections, grace_seconds=grace_seconds)
        except BaseException:
            ledger.close()
            raise


def check_migrated(view_db: ViewDatabase, projections: Sequence[Any]) -> None:
    """StartupRefused, in one line naming `subledger migrate`, unless this release can serve the database."""
    with view_db.transaction(readonly=True) as cursor:
        wrong = versions.problems(cursor, projections, TABLES_VERSION)
    if wrong:
        view_db.close()
        raise StartupRefused(f"{'; '.join(wrong)}: run `{COMMAND}` with this release and the same SUBLEDGER_DATABASE_URL first")
