"""SUBLEDGER_CIPHER_KEY: whole stored event payloads encrypted at rest (eventsourcing's AESCipher).

Two things the library leaves to us:

- **Startup check** (`check_ledger_cipher`): eventsourcing decrypts an event only
  when it is read, so a key turned on for a ledger written without it, a wrong
  key, or a missing key would surface as a MAC error in the middle of some
  request. Every process that builds the service first reads the ledger's first
  and last stored events and tells what they are: plain JSON, decryptable with
  the configured key, or neither. A mismatch refuses to start with one line
  saying why and what to do. An unfinished `encrypt-ledger` (its marker row is
  still there) refuses too.

- **Encrypting an existing ledger** (`encrypt_ledger`, `subledger keys
  encrypt-ledger`): rewrites the `state` of every stored event and snapshot that
  is still plain, in place, one transaction per batch, in position order. Each
  new value is decrypted back and compared with the original before it is
  written. Events keep their ids, versions, topics and positions, so read models
  and their positions stay valid. Rows already encrypted with the key are skipped,
  so an interrupted run is finished by running it again; a row encrypted with
  another key stops the run. Every other process must be stopped meanwhile (a
  process without the key would go on writing plain events; the startup check
  refuses a ledger whose last event is plain). In place rather than a copy into
  a new database: the ids the read models, the outbox and the gateways' order ids
  refer to stay as they are, and no second database must be provisioned. Plain
  copies of the rewritten rows linger in free pages until the database reclaims
  them, so the command ends with VACUUM (SQLite) / VACUUM FULL of the two tables
  (PostgreSQL); backups taken before still hold the plain payloads.
"""
from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from projections.database import ViewDatabase
from subledger.master_keys import CIPHER_KEY_SIZES, decode_key
from subledger.settings import StartupRefused
from subledger.storage import Database

if TYPE_CHECKING:  # imported when a key is set: pycryptodome costs a tenth of a second at every start
    from eventsourcing.cipher import AESCipher

MARKER_DDL = "CREATE TABLE IF NOT EXISTS ledger_cipher_runs (name TEXT PRIMARY KEY, started_at TEXT NOT NULL)"
RUN = "encrypt-ledger"
ENCRYPT_HINT = "stop every process and run `subledger keys encrypt-ledger` (docs/keys.md)"


class Stored(str, enum.Enum):
    PLAIN = "plain"
    ENCRYPTED = "encrypted"  # decrypts with the configured key
    FOREIGN = "foreign"  # neither: encrypted with a key not given


def cipher_for(cipher_key: str | None) -> AESCipher | None:
    if not cipher_key:
        return None
    # AESCipher reads the standard alphabet only (a URL-safe key would decode to other bytes).
    normalized = base64.b64encode(decode_key(cipher_key, CIPHER_KEY_SIZES)).decode("ascii")
    from eventsourcing.cipher import AESCipher

    return AESCipher({"CIPHER_KEY": normalized})  # type: ignore[arg-type]


def classify(state: bytes, cipher: AESCipher | None) -> Stored:
    state = bytes(state)
    if cipher is not None:
        try:
            cipher.decrypt(state)
            return Stored.ENCRYPTED
        except ValueError:
            pass
    try:
        return Stored.PLAIN if isinstance(json.loads(state), dict) else Stored.FOREIGN
    except (ValueError, UnicodeDecodeError):
        return Stored.FOREIGN


def check_ledger_cipher(recorder: Any, view_db: ViewDatabase, cipher_key: str | None) -> None:
    """Raise StartupRefused when the configured cipher key does not fit the stored events."""
    with view_db.transaction(readonly=True) as cursor:
        # Read-only: the marker's table exists only where encrypt-ledger ever ran.
        running = (
            cursor.execute("SELECT started_at FROM ledger_cipher_runs WHERE name = ?", (RUN,)).fetchone()
            if _table_exists(cursor, view_db.kind, "ledger_cipher_runs")
            else None
        )
    if running is not None:
        raise StartupRefused(
            f"an encrypt-ledger run started at {running['started_at']} did not finish: run"
            " `subledger keys encrypt-ledger` again (with every other process stopped) before starting"
        )
    last_id = recorder.max_notification_id()
    if not last_id:
        return
    first = recorder.select_notifications(start=None, limit=1)
    last = recorder.select_notifications(start=last_id, limit=1)
    if not first or not last:
        return
    cipher = cipher_for(cipher_key)
    kinds = (classify(first[0].state, cipher), classify(last[0].state, cipher))
    if cipher is None:
        if Stored.FOREIGN in kinds:
            raise StartupRefused(
                "the ledger's events are encrypted: set SUBLEDGER_CIPHER_KEY to the key they were encrypted with"
            )
        return
    if kinds[0] is Stored.FOREIGN or kinds[1] is Stored.FOREIGN:
        raise StartupRefused(
            "SUBLEDGER_CIPHER_KEY does not decrypt the ledger's events: it is not the key they were encrypted with"
        )
    if kinds == (Stored.PLAIN, Stored.PLAIN):
        raise StartupRefused(
            "SUBLEDGER_CIPHER_KEY is set but the ledger's events were written without it: "
            f"{ENCRYPT_HINT}, or unset SUBLEDGER_CIPHER_KEY"
        )
    if Stored.PLAIN in kinds:
        raise StartupRefused(
            f"the ledger is only partly encrypted with SUBLEDGER_CIPHER_KEY (position {last_id} is plain): {ENCRYPT_HINT}"
        )


@dataclass
class EncryptReport:
    events_encrypted: int = 0
    events_already: int = 0
    snapshots_encrypted: int = 0
    snapshots_already: int = 0
    vacuumed: bool = False


class ForeignKey(Exception):
    """A stored row is encrypted with a key other than SUBLEDGER_CIPHER_KEY."""


def _tables(kind: str) -> tuple[str, str, str]:
    """(events table, its position column, snapshots table), as eventsourcing names them."""
    if kind == "sqlite":
        return "stored_events", "rowid", "stored_snapshots"
    return "ledger_events", "notification_id", "ledger_snapshots"


def encrypt_ledger(
    db: Database, cipher_key: str, *, batch_size: int = 1000, vacuum: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> EncryptReport:
    """Encrypt every plain stored event and snapshot with `cipher_key` (see the module's doc)."""
    cipher = cipher_for(cipher_key)
    assert cipher is not None
    events, position, snapshots = _tables(db.kind)
    view_db = ViewDatabase.open(db, pool_size=2)
    report = EncryptReport()
    try:
        with view_db.transaction() as cursor:
            cursor.execute(MARKER_DDL)
            if not _table_exists(cursor, db.kind, events):
                return report  # nothing was ever written
            for order in ("ASC", "DESC"):  # a wrong key stops here, before anything is marked or written
                row = cursor.execute(f"SELECT {position} AS id, state FROM {events} ORDER BY {position} {order} LIMIT 1").fetchone()
                if row is not None and classify(row["state"], cipher) is Stored.FOREIGN:
                    raise ForeignKey(f"the event at position {row['id']} is encrypted with a key other than SUBLEDGER_CIPHER_KEY")
            cursor.execute(
                "INSERT INTO ledger_cipher_runs (name, started_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (RUN, datetime.now(timezone.utc).isoformat(timespec="seconds")),
            )
        after: Any = 0
        while True:
            with view_db.transaction() as cursor:
                rows = cursor.execute(
                    f"SELECT {position} AS id, state FROM {events} WHERE {position} > ? ORDER BY {position} LIMIT ?",
                    (after, batch_size),
                ).fetchall()
                if not rows:
                    break
                after = rows[-1]["id"]
                done = _encrypt_rows(cursor, cipher, rows, f"UPDATE {events} SET state = ? WHERE {position} = ?",
                                     lambda row: (row["id"],), f"event at position {{}}", lambda row: row["id"])
            report.events_encrypted += done
            report.events_already += len(rows) - done
            if progress:
                progress("events", len(rows))
        if _has_table(view_db, db.kind, snapshots):
            key: tuple[Any, ...] | None = None
            while True:
                where = "WHERE (originator_id, originator_version) > (?, ?) " if key else ""
                with view_db.transaction() as cursor:
                    rows = cursor.execute(
                        f"SELECT originator_id, originator_version, state FROM {snapshots} {where}"
                        "ORDER BY originator_id, originator_version LIMIT ?",
                        (*(key or ()), batch_size),
                    ).fetchall()
                    if not rows:
                        break
                    key = (rows[-1]["originator_id"], rows[-1]["originator_version"])
                    done = _encrypt_rows(
                        cursor, cipher, rows,
                        f"UPDATE {snapshots} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                        lambda row: (row["originator_id"], row["originator_version"]),
                        "snapshot {}", lambda row: f"{row['originator_id']} v{row['originator_version']}",
                    )
                report.snapshots_encrypted += done
                report.snapshots_already += len(rows) - done
                if progress:
                    progress("snapshots", len(rows))
        with view_db.transaction() as cursor:
            cursor.execute("DELETE FROM ledger_cipher_runs WHERE name = ?", (RUN,))
    finally:
        view_db.close()
    if vacuum and (report.events_encrypted or report.snapshots_encrypted):
        _vacuum(db, (events, snapshots))
        report.vacuumed = True
    return report


def _encrypt_rows(
    cursor: Any, cipher: AESCipher, rows: list[dict[str, Any]], update: str,
    where: Callable[[dict[str, Any]], tuple[Any, ...]], what: str, name: Callable[[dict[str, Any]], Any],
) -> int:
    changes = []
    for row in rows:
        state = bytes(row["state"])
        kind = classify(state, cipher)
        if kind is Stored.FOREIGN:
            raise ForeignKey(f"{what.format(name(row))} is encrypted with a key other than SUBLEDGER_CIPHER_KEY")
        if kind is Stored.PLAIN:
            encrypted = cipher.encrypt(state)
            if cipher.decrypt(encrypted) != state:  # never write what would not read back
                raise RuntimeError(f"{what.format(name(row))} did not survive its round trip; nothing written")
            changes.append((encrypted, *where(row)))
    cursor.executemany(update, changes)
    return len(changes)


def _table_exists(cursor: Any, kind: str, table: str) -> bool:
    if kind == "sqlite":
        sql = "SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 AS one FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
    return cursor.execute(sql, (table,)).fetchone() is not None


def _has_table(view_db: ViewDatabase, kind: str, table: str) -> bool:
    with view_db.transaction(readonly=True) as cursor:
        return _table_exists(cursor, kind, table)


def _vacuum(db: Database, tables: tuple[str, ...]) -> None:
    """Reclaim the pages that still hold the plain payloads (outside any transaction)."""
    if db.kind == "sqlite":
        import sqlite3

        connection = sqlite3.connect(db.path, isolation_level=None, timeout=30)
        try:
            connection.execute("VACUUM")
        finally:
            connection.close()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(db.psycopg_conninfo(), autocommit=True) as connection:
        for table in tables:
            if connection.execute("SELECT to_regclass(%s) AS t", (f"{db.schema}.{table}",)).fetchone()[0]:
                connection.execute(sql.SQL("VACUUM FULL {}.{}").format(sql.Identifier(db.schema), sql.Identifier(table)))
