"""`subledger migrate` and `subledger projections status` (docs/upgrading.md)."""
from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from subledger.cli_read_models import projections_app

console = Console(stderr=True)


def _settings() -> Any:
    from subledger.cli import load_settings
    from subledger.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.env, settings.log_level)
    return settings


def migrate() -> None:
    """Create or update every table this release needs, rebuild each read model whose version
    changed beside the live one and switch to it, and record the versions. Safe to run twice
    or from several places at once; run it before starting a new release."""
    from projections.rebuild import DROP_GRACE_SECONDS
    from subledger.ledger_setup import migrate_database

    report = migrate_database(_settings(), grace_seconds=DROP_GRACE_SECONDS)
    for line in report.lines():
        print(line)
    console.print(f"migrated: {len(report.changes)} read models, {len(report.rebuilt)} rebuilt")


@projections_app.command("status")
def status() -> None:
    """Each read model's position, the ledger's head, the lag, and its version (declared by this
    release, recorded in the database); exit 1 when `subledger migrate` is needed."""
    from projections import versions
    from projections.database import ViewDatabase
    from projections.generations import live_prefix
    from projections.registry import read_models
    from subledger.migrate import TABLES_VERSION
    from subledger.storage import Database

    db = Database.from_url(_settings().database_url)
    view_db = ViewDatabase.open(db, pool_size=2)
    projections = list(read_models().values())
    try:
        with view_db.transaction(readonly=True) as cursor:
            head = _head(cursor, db.kind)
            recorded = versions.read_model_versions(cursor)
            rows = []
            for projection in projections:
                position = None
                if cursor.table_exists("projection_tracking"):
                    prefix = live_prefix(cursor, projection.name) if cursor.table_exists("projection_generations") else None
                    found = cursor.execute(
                        "SELECT position FROM projection_tracking WHERE name = ?", ((prefix or "") + projection.name,)
                    ).fetchone()
                    position = int(found["position"]) if found else None
                rows.append((projection.name, position, projection.version, recorded.get(projection.name)))
            problems = versions.problems(cursor, projections, TABLES_VERSION)
    finally:
        view_db.close()
    print(f"{'read model':<16} {'position':>9} {'head':>9} {'lag':>9} {'declared':>8} {'recorded':>8}")
    for name, position, declared, was in rows:
        lag = "-" if position is None else str(max(0, head - position))
        print(f"{name:<16} {_shown(position):>9} {head:>9} {lag:>9} {declared:>8} {_shown(was):>8}")
    for problem in problems:
        print(f"needs `subledger migrate`: {problem}")
    raise typer.Exit(1 if problems else 0)


def _shown(value: int | None) -> str:
    return "-" if value is None else str(value)


def _head(cursor: Any, kind: str) -> int:
    """The ledger's last notification id (0 before the first event or the ledger's tables)."""
    from subledger.ledger_cipher import _tables

    table, column, _ = _tables(kind)
    if not cursor.table_exists(table):
        return 0
    return int(cursor.execute(f"SELECT MAX({column}) AS head FROM {table}").fetchone()["head"] or 0)
