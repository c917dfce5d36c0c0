"""Which set of tables is live for each read model, and finding a set's tables.

A projection's tables all carry one prefix ("" for the first set). A rebuild
fills a new set under a fresh prefix beside the live one; `projection_generations`
says which prefix is live, and changing its row (one UPDATE, in the
transaction that checks the copy has caught up) is the switch. Runners and
queries look the live prefix up again, so every process moves to the new
tables without a restart; the old set is dropped a little later.

Projections follow one convention for this: `type(p)(prefix=...)` builds the
same projection over another set of tables, and `p.tracking_name` is
`prefix + p.name`.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from projections.database import ViewCursor, ViewDatabase

log = logging.getLogger(__name__)

GENERATIONS_DDL = "CREATE TABLE IF NOT EXISTS projection_generations (name TEXT PRIMARY KEY, prefix TEXT NOT NULL)"

#: Seconds a process trusts the live prefix it last read: a switch made by another
#: process is seen within this, and old tables are dropped well after it.
REFRESH_SECONDS = 0.5


def prefix_of(projection: Any) -> str:
    return projection.tracking_name[: len(projection.tracking_name) - len(projection.name)]


def with_prefix(projection: Any, prefix: str) -> Any:
    """The same projection over the tables of `prefix`."""
    return projection if prefix_of(projection) == prefix else type(projection)(prefix=prefix)


def live_prefix(cursor: ViewCursor, name: str) -> str | None:
    """The live prefix of the read model `name`; None until its first rebuild (then it is "")."""
    row = cursor.execute("SELECT prefix FROM projection_generations WHERE name = ?", (name,)).fetchone()
    return row["prefix"] if row else None


class LiveProjection:
    """A read model over whatever tables are live now. Given a projection without
    prefix it follows `projection_generations`; given a prefixed one (a copy) it stays put."""

    def __init__(self, projection: Any, view_db: ViewDatabase, *, create: bool = True) -> None:
        self.view_db = view_db
        self.follows = prefix_of(projection) == ""
        self._projection = projection
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if self.follows and create:
            with view_db.transaction() as cursor:
                cursor.execute(GENERATIONS_DDL)

    def current(self, refresh: bool = False) -> Any:
        if self.follows and (refresh or time.monotonic() - self._checked_at > REFRESH_SECONDS):
            with self.view_db.transaction(readonly=True) as cursor:
                prefix = live_prefix(cursor, self._projection.name)
            with self._lock:
                self._checked_at = time.monotonic()
                if prefix is not None and prefix != prefix_of(self._projection):
                    log.info("projection=%s prefix=%r now reading the rebuilt tables", self._projection.name, prefix)
                    self._projection = with_prefix(self._projection, prefix)
        return self._projection

    def set(self, projection: Any) -> None:
        """Use `projection` now (the caller read the live prefix itself)."""
        with self._lock:
            self._projection = projection
            self._checked_at = time.monotonic()


def tables_with_prefix(cursor: ViewCursor, kind: str, prefix: str) -> list[str]:
    """Tables whose name starts with `prefix` (a non-empty, unique generation prefix)."""
    if not prefix:
        raise ValueError("the first generation's tables cannot be found by an empty prefix")
    if kind == "sqlite":
        rows = cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        names = [r["name"] for r in rows]
    else:
        rows = cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
        names = [r["table_name"] for r in rows]
    return sorted(n for n in names if n.startswith(prefix))


def primary_key(cursor: ViewCursor, kind: str, table: str) -> list[str]:
    """The table's primary key columns, in key order (empty when it has none)."""
    if kind == "sqlite":
        rows = cursor.execute(f"PRAGMA table_info({table})").fetchall()
        return [r["name"] for r in sorted(rows, key=lambda r: r["pk"]) if r["pk"]]
    rows = cursor.execute(
        "SELECT a.attname AS name FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = to_regclass(?) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (table,),
    ).fetchall()
    return [r["name"] for r in rows]


def drop_generation(cursor: ViewCursor, kind: str, projection: Any, base_tables: list[str]) -> None:
    """Drop a set of tables and its tracking row."""
    prefix = prefix_of(projection)
    for base in base_tables:
        cursor.execute(f"DROP TABLE IF EXISTS {prefix}{base}")
    cursor.execute("DELETE FROM projection_tracking WHERE name = ?", (projection.tracking_name,))
