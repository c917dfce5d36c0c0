"""Opening the ledger: eventsourcing's environment from settings, the startup checks (cipher
and master keys), and `subledger migrate` or its check (subledger/migrate.py)."""
from __future__ import annotations

from typing import Any

from domain.catalog import load_catalog
from domain.ledger import Ledger
from projections.database import ViewDatabase
from projections.registry import read_models as registered_read_models
from subledger.ledger_cipher import check_ledger_cipher
from subledger.migrate import Report as MigrationReport
from subledger.migrate import check_migrated, migrate
from subledger.settings import Settings, StartupRefused
from subledger.storage import Database
from subledger.user_keys import SqlUserKeys


def ledger_env(settings: Settings, db: Database, create_tables: bool = True) -> dict[str, str]:
    env = db.ledger_env(pool_size=settings.db_pool_size)
    # eventsourcing creates its tables when the ledger opens unless told not to (subledger/migrate.py).
    env["CREATE_TABLE"] = "true" if create_tables else "false"
    # Cached aggregates are fast-forwarded from the database on every load, so several
    # processes stay correct; the cache saves re-reading history. A command's first attempt
    # decides on its cached copies as they stand and has them checked after (domain/cache_trust.py).
    env["AGGREGATE_CACHE_MAXSIZE"] = "20000"
    if settings.cipher_key:
        env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
        env["CIPHER_KEY"] = settings.cipher_key
    return env


def open_ledger(settings: Settings, db: Database, view_db: ViewDatabase, *, create_tables: bool = True) -> Ledger:
    """The ledger, once its stored events fit SUBLEDGER_CIPHER_KEY and its per-user keys fit the
    master keys; else StartupRefused, in one line, rather than a MAC error at some later read
    (docs/keys.md). Closes the view database when it refuses."""
    user_keys = SqlUserKeys(view_db, settings.keyring, create=create_tables)
    env = ledger_env(settings, db, create_tables)
    ledger = Ledger(env=env, catalog=load_catalog(settings.catalog), tz=settings.tz, keys=user_keys)
    try:
        check_ledger_cipher(ledger.recorder, view_db, settings.cipher_key)
        user_keys.check()
    except StartupRefused:
        ledger.close()
        view_db.close()
        raise
    return ledger


def migrated_ledger(settings: Settings, db: Database, view_db: ViewDatabase, projections: list[Any]) -> Ledger:
    """The ledger of a migrated database: `subledger migrate` run here first when the process
    migrates at start (SUBLEDGER_MIGRATE_ON_START, development's default), else only checked:
    StartupRefused naming the command when this release cannot serve the database as it is."""
    if settings.migrates_on_start:
        ledger, _ = migrate(db, view_db, lambda create: open_ledger(settings, db, view_db, create_tables=create), projections)
        return ledger
    check_migrated(view_db, projections)
    return open_ledger(settings, db, view_db, create_tables=False)


def migrate_database(settings: Settings, *, grace_seconds: float | None = None) -> MigrationReport:
    """`subledger migrate` (subledger/migrate.py): `grace_seconds` set, the tables of a rebuilt read
    model's old version are dropped that long after the switch, before it returns."""
    db = Database.from_url(settings.database_url)
    view_db = ViewDatabase.open(db, pool_size=2)
    try:
        ledger, report = migrate(db, view_db, lambda create: open_ledger(settings, db, view_db, create_tables=create),
                                 list(registered_read_models().values()), grace_seconds=grace_seconds)
        ledger.close()
    finally:
        view_db.close()
    return report


def preflight(settings: Settings) -> None:
    """The startup checks of `build`, for processes that build later (the arq worker)."""
    db = Database.from_url(settings.database_url)
    view_db = ViewDatabase.open(db, pool_size=2)
    migrated_ledger(settings, db, view_db, list(registered_read_models().values())).close()
    view_db.close()
