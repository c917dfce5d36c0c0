"""`audit verify`: replay the ledger and compare it with every read model (SPEC §7).

Two comparisons, against one consistent snapshot of the live read models:
- Row for row: each read model is built again from position 0 into scratch
  tables, up to the position its live tables had in the snapshot, and the two
  sets of tables must be equal. This catches any row changed, lost or added
  by anything other than the projection.
- Against the aggregates: every aggregate is replayed from its events alone
  (no snapshot, no cache) and the rows that describe it (payments, wallet
  lots and balances, the aggregate index) must say what it says
  (projections/verify_rules.py). This catches a projection whose own logic
  drifted from the domain's.
Mismatches name the read model, the table, the row's key and the column.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.copies import BULK_BATCH_SIZE, create_copies, fill_copies
from projections.database import ViewCursor, ViewDatabase
from projections.generations import prefix_of, primary_key, tables_with_prefix, with_prefix
from projections.verify_rules import RULES, Replay, check_lineage, replay_ledger

#: Mismatches listed in full; beyond this only their number is reported.
MAX_LISTED = 500


@dataclass
class Snapshot:
    """A live read model's tables as they stood at `position`: base table name -> (key columns, rows)."""

    name: str
    position: int
    tables: dict[str, tuple[list[str], list[dict[str, Any]]]] = field(default_factory=dict)


@dataclass
class Report:
    events_replayed: int = 0
    aggregates_checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, problem: str) -> None:
        if len(self.mismatches) < MAX_LISTED:
            self.mismatches.append(problem)
        else:
            self.more += 1

    def lines(self) -> list[str]:
        return self.mismatches + ([f"... and {self.more} more"] if self.more else [])


def verify(
    ledger: Any, view_db: ViewDatabase, runners: Sequence[Any], *, batch_size: int = BULK_BATCH_SIZE, progress: Callable[[str, int, int], None] | None = None
) -> Report:
    report = Report()
    for runner in runners:
        runner.catch_up()  # compare the whole ledger, not an old part of it
    live = [runner.current(refresh=True) for runner in runners]
    token = secrets.token_hex(4)
    copies = [with_prefix(projection, f"v{token}{i}_") for i, projection in enumerate(live)]
    # No secondary indexes: the copies are only read whole and dropped (create_copies' note).
    create_copies(view_db, copies, defer_indexes=True)
    try:
        bases = _base_tables(view_db, copies)
        snapshots = _snapshot(view_db, live, bases)
        # One pass over the log for all copies and the replay: each copy is compared once the
        # pass reaches its live position; the replay takes every batch the copies decoded, then
        # goes on alone from there to the head.
        replay, replayed_to = Replay(), 0

        def replay_batch(events: list[tuple[int, Any]]) -> None:
            nonlocal replayed_to
            replay.apply(events)
            replayed_to = events[-1][0]

        def show(at: int, to: int) -> None:
            if progress is not None:
                progress("rebuild", at, to)
                progress("replay", at, to)

        pending = sorted(zip(copies, snapshots), key=lambda pair: pair[1].position)
        while pending:
            until = pending[0][1].position
            fill_copies(
                ledger, view_db, [copy for copy, _ in pending], until=until, batch_size=batch_size,
                progress=lambda done, at, to: show(at, to), on_events=replay_batch,
            )
            while pending and pending[0][1].position == until:
                copy, snapshot = pending.pop(0)
                _compare_rows(view_db, copy, snapshot, report)
        replay_ledger(ledger, batch_size, (lambda done, at, to: progress("replay", at, to)) if progress else None,
                      replay=replay, after=replayed_to)
        report.events_replayed, report.aggregates_checked = replay.events, len(replay.aggregates)
        report.mismatches.extend(replay.problems)
        for problem in check_lineage(replay):
            report.add(problem)
        for snapshot in snapshots:
            rule = RULES.get(snapshot.name)
            if rule is not None:
                for problem in rule(snapshot, replay):
                    report.add(problem)
    finally:
        _drop(view_db, copies)
    return report


def _base_tables(view_db: ViewDatabase, copies: Sequence[Any]) -> list[list[str]]:
    with view_db.transaction(readonly=True) as cursor:
        return [
            [t[len(prefix_of(c)) :] for t in tables_with_prefix(cursor, view_db.kind, prefix_of(c))] for c in copies
        ]


def _snapshot(view_db: ViewDatabase, live: Sequence[Any], bases: Sequence[list[str]]) -> list[Snapshot]:
    """Every live table and tracking position, read in one consistent view of the database."""
    snapshots = []
    with view_db.transaction(readonly=True) as cursor:
        if view_db.kind == "postgres":
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for projection, tables in zip(live, bases):
            row = cursor.execute(
                "SELECT position FROM projection_tracking WHERE name = ?", (projection.tracking_name,)
            ).fetchone()
            snapshot = Snapshot(projection.name, int(row["position"]) if row else 0)
            for base in tables:
                snapshot.tables[base] = _read_table(cursor, view_db.kind, prefix_of(projection) + base)
            snapshots.append(snapshot)
    return snapshots


def _read_table(cursor: ViewCursor, kind: str, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    return primary_key(cursor, kind, table), cursor.execute(f"SELECT * FROM {table}").fetchall()


def _compare_rows(view_db: ViewDatabase, copy: Any, snapshot: Snapshot, report: Report) -> None:
    with view_db.transaction(readonly=True) as cursor:
        replayed = {base: _read_table(cursor, view_db.kind, prefix_of(copy) + base) for base in snapshot.tables}
    for base, (key, live_rows) in snapshot.tables.items():
        _, expected_rows = replayed[base]
        where = f"{snapshot.name}: {base}"
        live_by_key, expected_by_key = _keyed(live_rows, key), _keyed(expected_rows, key)
        for k, expected in expected_by_key.items():
            row = live_by_key.get(k)
            if row is None:
                report.add(f"{where} {_describe(key, k)}: missing from the read model")
                continue
            for column, value in expected.items():
                if row.get(column) != value:
                    report.add(
                        f"{where} {_describe(key, k)}: {column} is {row.get(column)!r} in the read model,"
                        f" {value!r} replayed from the ledger"
                    )
        for k in live_by_key.keys() - expected_by_key.keys():
            report.add(f"{where} {_describe(key, k)}: in the read model but not in the ledger")


def _keyed(rows: list[dict[str, Any]], key: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    if key:
        return {tuple(row[c] for c in key): row for row in rows}
    # No primary key: the rows themselves are the keys (a repeated row counts once per copy).
    keyed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        base = tuple(sorted(row.items()))
        n = 0
        while (*base, n) in keyed:
            n += 1
        keyed[(*base, n)] = row
    return keyed


def _describe(key: list[str], values: tuple[Any, ...]) -> str:
    if not key:
        return "row " + ", ".join(f"{c}={v!r}" for c, v in values[:-1])
    return ", ".join(f"{c}={v}" for c, v in zip(key, values))


def _drop(view_db: ViewDatabase, copies: Sequence[Any]) -> None:
    with view_db.transaction() as cursor:
        for copy in copies:
            for table in tables_with_prefix(cursor, view_db.kind, prefix_of(copy)):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute("DELETE FROM projection_tracking WHERE name = ?", (copy.tracking_name,))


__all__ = ["Replay", "Report", "verify"]
