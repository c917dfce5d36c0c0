"""The database the read models live in: the ledger's own database.

SQLite: one connection to the ledger's file, shared by every thread behind a
lock (a sqlite3 connection has one transaction state, so two threads must not
interleave statements on it). PostgreSQL: a connection pool on the same
database with `search_path` set to the ledger's schema, so view tables sit
beside `ledger_events`.

SQL is written once with `?` placeholders and rows come back as dicts on both
databases, so projections and queries never branch on the database kind.
"""
from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from subledger.storage import Database

#: Seconds a writer waits for the SQLite write lock before giving up; the ledger uses the same bound.
SQLITE_BUSY_TIMEOUT = 30


class ViewCursor:
    """The one cursor interface projections see: `?` placeholders, dict rows."""

    def __init__(self, raw: Any, convert_placeholders: bool) -> None:
        self._raw = raw
        self._convert = convert_placeholders

    def _sql(self, sql: str) -> str:
        # psycopg uses %s and treats a bare % as the start of a placeholder.
        return sql.replace("%", "%%").replace("?", "%s") if self._convert else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> ViewCursor:
        self._raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._raw.executemany(self._sql(sql), [tuple(row) for row in rows])

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Plain INSERTs of many rows: PostgreSQL's COPY (a stream, not a statement per
        row: what rebuilds spend most of their database time on), else executemany."""
        if not rows:
            return
        names = ", ".join(columns)
        if self._convert:
            with self._raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            self._raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [tuple(row) for row in rows])

    def rows_by_key(
        self, table: str, key: str, keys: Sequence[str], columns: str = "*", chunk: int = 500
    ) -> dict[Any, dict[str, Any]]:
        """The rows of `table` whose `key` is one of `keys` (distinct), by key: one statement
        per `chunk` keys (a batch's lookups, instead of one per key)."""
        rows: dict[Any, dict[str, Any]] = {}
        for i in range(0, len(keys), chunk):
            part = keys[i : i + chunk]
            found = self.execute(f"SELECT {columns} FROM {table} WHERE {key} IN ({', '.join('?' * len(part))})", part).fetchall()
            rows.update((row[key], row) for row in found)
        return rows

    def add_column(self, table: str, column: str, definition: str) -> bool:
        """Give an existing table a column it lacks (a read model that gained a field after
        its tables were created); True when added. Only for columns whose value the events
        already applied cannot have carried (nullable, NULL in the old rows), so no rebuild
        is needed. On SQLite the write transaction (BEGIN IMMEDIATE) makes the check and the
        ALTER atomic; on PostgreSQL two processes may both see it missing: IF NOT EXISTS."""
        self.execute(f"SELECT * FROM {table} LIMIT 0")
        if column in {d[0] for d in self._raw.description}:
            return False
        guard = "IF NOT EXISTS " if self._convert else ""
        self.execute(f"ALTER TABLE {table} ADD COLUMN {guard}{column} {definition}")
        return True

    def table_exists(self, name: str) -> bool:
        if self._convert:  # PostgreSQL: the search path's schema
            return self.execute("SELECT to_regclass(?) IS NOT NULL AS found", (name,)).fetchone()["found"]
        found = self.execute("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return found is not None

    def fetchone(self) -> dict[str, Any] | None:
        return self._raw.fetchone()

    def fetchall(self) -> list[dict[str, Any]]:
        return list(self._raw.fetchall())

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount

    @property
    def kind(self) -> str:
        """"postgres" or "sqlite": for the little DDL that differs (a table keyed by its rowid)."""
        return "postgres" if self._convert else "sqlite"


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row)}


class ViewDatabase(ABC):
    """Opens with `ViewDatabase.open(db)`; use `transaction()` for every read and write."""

    kind: str

    @staticmethod
    def open(db: Database, pool_size: int = 4) -> ViewDatabase:
        if db.kind == "sqlite":
            return _SQLiteViewDatabase(db.path)
        return _PostgresViewDatabase(db, pool_size)

    @abstractmethod
    def transaction(self, readonly: bool = False, durable: bool = True) -> AbstractContextManager[ViewCursor]:
        """Commit when the block ends, roll back if it raises. `readonly` lets
        SQLite read without taking the write lock the ledger's writers need.

        `durable=False` lets PostgreSQL commit without waiting for its WAL to reach the
        disk (synchronous_commit off): a crash may lose such a transaction, never part of
        one, and the next durable commit makes it and everything before it durable. Only
        for writes that can be made again from the ledger and that nothing acts on until a
        durable commit follows (a rebuild's copies)."""

    def autocommit(self) -> AbstractContextManager[ViewCursor]:
        """Each statement on its own, outside any transaction: for reads whose statements need
        not see one snapshot together (a lookup of independent rows, such as `user_keys`).
        PostgreSQL then answers in one round trip instead of BEGIN, the statement and COMMIT
        (a user's key read costs 0.20 ms of CPU in a transaction here; docs/performance.md,
        "One round trip for a user's key"). SQLite reads in a transaction as before: it has
        no round trips to save."""
        return self.transaction(readonly=True)

    @abstractmethod
    def close(self) -> None: ...

    def chose_to_abort(self, error: BaseException) -> bool:
        """True when the database aborted the transaction to break a deadlock: running it
        again is safe and will succeed once the other transaction has committed."""
        return False


class _SQLiteViewDatabase(ViewDatabase):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        # Autocommit mode: transactions are begun explicitly, so a write takes
        # the lock up front (BEGIN IMMEDIATE) instead of failing to upgrade a
        # read lock when the ledger wrote in between.
        self._connection = sqlite3.connect(
            path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._connection.row_factory = _dict_row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        self._lock = threading.Lock()
        self._held = threading.local()

    @contextmanager
    def transaction(self, readonly: bool = False, durable: bool = True) -> Iterator[ViewCursor]:
        if getattr(self._held, "by_me", False):
            # The lock is not reentrant: waiting here would wait for ourselves forever.
            raise RuntimeError("a view transaction was begun inside another one on the same thread")
        # `durable` changes nothing here: measured, a SQLite commit's time is writing the WAL,
        # not waiting for fsync (synchronous=NORMAL took as long as FULL).
        with self._lock:
            self._held.by_me = True
            raw = self._connection.cursor()
            # A read takes no lock until it reads, so it never holds up the ledger's writers.
            raw.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                yield ViewCursor(raw, convert_placeholders=False)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            else:
                raw.execute("COMMIT")
            finally:
                raw.close()
                self._held.by_me = False

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _PostgresViewDatabase(ViewDatabase):
    kind = "postgres"

    def __init__(self, db: Database, pool_size: int) -> None:
        from psycopg import IsolationLevel, sql
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        db.ensure_schema()
        self._repeatable_read = IsolationLevel.REPEATABLE_READ
        set_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(db.schema))

        def configure(connection: Any) -> None:
            connection.execute(set_path)
            # The pool wants connections back idle, not inside the SET's transaction.
            connection.commit()

        def reset(connection: Any) -> None:
            # Back to the server's defaults for the next borrower (see `transaction`); idle, no I/O.
            connection.isolation_level = None
            connection.read_only = None
            connection.autocommit = False  # after `autocommit()`

        self._pool = ConnectionPool(
            db.psycopg_conninfo(),
            min_size=1,
            max_size=pool_size,
            kwargs={"row_factory": dict_row},
            configure=configure,
            reset=reset,
            open=True,
        )

    @contextmanager
    def transaction(self, readonly: bool = False, durable: bool = True) -> Iterator[ViewCursor]:
        # A read sees one snapshot in all its statements, as a SQLite read does: under READ
        # COMMITTED each statement took its own, so a webhook delivery could be read PENDING
        # next to the attempt that had just made it SUCCEEDED, or a page beside a count from
        # another moment. REPEATABLE READ READ ONLY costs nothing more (it is said in the
        # BEGIN psycopg sends anyway), and a read-only transaction never fails to serialize.
        # The pool's connection context commits on success and rolls back on error.
        with self._pool.connection() as connection:
            if readonly:
                connection.isolation_level = self._repeatable_read
                connection.read_only = True
            with connection.cursor() as raw:
                if not durable:
                    raw.execute("SET LOCAL synchronous_commit TO off")  # this transaction only
                yield ViewCursor(raw, convert_placeholders=True)

    @contextmanager
    def autocommit(self) -> Iterator[ViewCursor]:
        with self._pool.connection() as connection:
            connection.autocommit = True  # the pool's `reset` turns it off again
            with connection.cursor() as raw:
                yield ViewCursor(raw, convert_placeholders=True)

    def chose_to_abort(self, error: BaseException) -> bool:
        from psycopg import errors

        return isinstance(error, errors.DeadlockDetected)

    def close(self) -> None:
        self._pool.close()
