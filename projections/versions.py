"""Which version of each read model's tables the database holds (`subledger migrate`).

Every read model declares `version`, an integer for the shape and meaning of its tables;
a change that a plain `CREATE ... IF NOT EXISTS` cannot bring to tables already filled
(a new column whose value old events carry, a changed meaning) bumps it. `schema_versions`
records the version each read model's live tables were built at, and the version of the
product's own tables (`tables`). A database made before versions were recorded holds
read models of version BASELINE.

`plan` compares the two: a read model is NEW (no tables yet: created empty, filled by its
runner), SAME (its tables are kept; missing indexes are added) or CHANGED (rebuilt beside
the live tables and switched, projections/rebuild.py). `problems` is the check a process
makes at start when it does not migrate itself: one line per difference.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from projections.database import ViewCursor
from projections.generations import live_prefix

VERSIONS = "schema_versions"
VERSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSIONS} (name TEXT PRIMARY KEY, version INTEGER NOT NULL, recorded_at TEXT NOT NULL)"
)
#: The row of the product's own tables (ledger, keys, webhooks, outbox, run records, bookkeeping).
TABLES = "tables"
#: The read models' version in a database made before versions were recorded.
BASELINE = 1
READ_MODEL = "read_model."


class Change(str, Enum):
    NEW = "new"
    SAME = "same"
    CHANGED = "changed"


def recorded(cursor: ViewCursor) -> dict[str, int] | None:
    """Every recorded version by row name; None when nothing was ever recorded."""
    if not cursor.table_exists(VERSIONS):
        return None
    return {row["name"]: int(row["version"]) for row in cursor.execute(f"SELECT name, version FROM {VERSIONS}").fetchall()}


def read_model_versions(cursor: ViewCursor) -> dict[str, int]:
    """The recorded version of each read model, by its name."""
    found = recorded(cursor) or {}
    return {name[len(READ_MODEL):]: version for name, version in found.items() if name.startswith(READ_MODEL)}


def record(cursor: ViewCursor, name: str, version: int) -> None:
    cursor.execute(
        f"INSERT INTO {VERSIONS} (name, version, recorded_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET version = excluded.version, recorded_at = excluded.recorded_at",
        (name, version, datetime.now(timezone.utc).isoformat(timespec="seconds")),
    )


def record_read_model(cursor: ViewCursor, projection: Any) -> None:
    record(cursor, READ_MODEL + projection.name, projection.version)


def _has_tables(cursor: ViewCursor, name: str) -> bool:
    """True when the read model's live tables exist (its tracking row is made with them)."""
    if not cursor.table_exists("projection_tracking"):
        return False
    prefix = live_prefix(cursor, name) if cursor.table_exists("projection_generations") else None
    row = cursor.execute("SELECT 1 AS found FROM projection_tracking WHERE name = ?", ((prefix or "") + name,)).fetchone()
    return row is not None


def plan(cursor: ViewCursor, projections: Iterable[Any]) -> dict[str, Change]:
    """What `subledger migrate` does to each read model."""
    versions = read_model_versions(cursor)
    changes = {}
    for projection in projections:
        if projection.name in versions:
            was: int | None = versions[projection.name]
        else:
            was = BASELINE if _has_tables(cursor, projection.name) else None
        changes[projection.name] = Change.NEW if was is None else Change.SAME if was == projection.version else Change.CHANGED
    return changes


def problems(cursor: ViewCursor, projections: Sequence[Any], tables_version: int) -> list[str]:
    """Why this database cannot be served by this release without `subledger migrate` (empty: it can)."""
    found = recorded(cursor)
    if found is None:
        return ["the database has not been migrated (no schema versions recorded)"]
    wrong = []
    if found.get(TABLES) != tables_version:
        wrong.append(f"its tables are at version {found.get(TABLES, 'none')}, this release needs {tables_version}")
    for projection in projections:
        was = found.get(READ_MODEL + projection.name)
        if was != projection.version:
            wrong.append(f"read model {projection.name} is at version {was or 'none'}, this release needs {projection.version}")
    return wrong
