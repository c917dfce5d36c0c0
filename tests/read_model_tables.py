"""Reading every read model's live tables, for tests that compare them across rebuilds."""
from __future__ import annotations

import json
import os
from typing import Any

from projections.copies import create_copies
from projections.generations import prefix_of, tables_with_prefix, with_prefix


def base_tables(built: Any) -> dict[str, list[str]]:
    """Each read model's table names without prefix (found by creating a scratch set)."""
    found = {}
    for runner in built.runners:
        scratch = with_prefix(runner.current(), f"s{os.getpid()}x_")
        create_copies(built.view_db, [scratch])
        with built.view_db.transaction() as cursor:
            tables = tables_with_prefix(cursor, built.view_db.kind, prefix_of(scratch))
            found[runner.name] = [t[len(prefix_of(scratch)) :] for t in tables]
            for table in tables:
                cursor.execute(f"DROP TABLE {table}")
            cursor.execute("DELETE FROM projection_tracking WHERE name = ?", (scratch.tracking_name,))
    return found


def dump(built: Any, bases: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every live read-model row, by table name without prefix, in a fixed order."""
    rows = {}
    for runner in built.runners:
        prefix = prefix_of(runner.current(refresh=True))
        with built.view_db.transaction(readonly=True) as cursor:
            for base in bases[runner.name]:
                found = cursor.execute(f"SELECT * FROM {prefix}{base}").fetchall()
                rows[f"{runner.name}.{base}"] = sorted(json.dumps(r, sort_keys=True, default=str) for r in found)
    return rows


def generations(built: Any) -> dict[str, str]:
    with built.view_db.transaction(readonly=True) as cursor:
        return {r["name"]: r["prefix"] for r in cursor.execute("SELECT name, prefix FROM projection_generations").fetchall()}
