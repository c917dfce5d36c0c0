"""Filling fresh copies of read models from ledger position 0 (rebuild, audit verify).

Every copy moves through the log in step: a batch of notifications is read
and decoded once, then applied to every copy in one view transaction that
also moves each copy's tracking row (compare-and-set), so an interrupted
build leaves whole batches behind and never touches the live tables.

Decoding and applying run one after the other in the calling thread. They
used to overlap (the next batch decoded in a helper thread), which made
rebuilds slower on both databases: every database call releases the GIL,
and getting it back from a thread busy decoding waits up to the switch
interval (5 ms), dozens of times per batch (`subledger bench rebuild`,
docs/performance.md).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from projections.database import ViewCursor, ViewDatabase
from projections.generations import GENERATIONS_DDL
from projections.runner import TRACKING_DDL, move_position

#: (events applied so far, position reached, target position)
Progress = Callable[[int, int, int], None]

#: Events per transaction when filling copies (rebuild, audit verify). Each batch costs a
#: commit and a statement or more per read model whatever its size, so bigger batches
#: rebuild faster: 100,000 events took 3.6-3.8 s at 1,000 and 3.0-3.1 s at 5,000 on SQLite,
#: 4.0 s and 3.1-3.3 s on PostgreSQL (docs/performance.md). On SQLite a batch holds the
#: database's write lock while it applies, about 0.1 s at this size, during which the
#: ledger's writers wait; `projections rebuild --batch-size` lowers it.
BULK_BATCH_SIZE = 5000

#: PostgreSQL connections building a rebuild's deferred indexes at once (`create_indexes`).
INDEX_BUILDERS = 2


def create_copies(view_db: ViewDatabase, copies: Sequence[Any], *, defer_indexes: bool = False) -> list[str]:
    """Create the copies' tables and tracking rows. With `defer_indexes`, the
    secondary indexes are not created but returned, for `create_indexes` once
    the bulk of the log is in: building an index over a filled table is much
    cheaper than keeping it up to date row by row (no projection's `apply`
    needs more than the primary keys)."""
    deferred: list[str] = []
    with view_db.transaction() as cursor:
        cursor.execute(TRACKING_DDL)
        cursor.execute(GENERATIONS_DDL)
        for copy in copies:
            copy.create_tables(_DeferIndexes(cursor, deferred) if defer_indexes else cursor)
            cursor.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                (copy.tracking_name,),
            )
    return deferred


def create_indexes(view_db: ViewDatabase, statements: Sequence[str], on_each: Callable[[Any], None] | None = None) -> None:
    """The indexes `create_copies` deferred, one transaction each (`on_each(cursor)` inside, e.g. a heartbeat).

    On PostgreSQL `INDEX_BUILDERS` connections build them at once: the server does the work
    (this process only waits), so a second core shortens the phase. Each build then has
    `on_each` run in a transaction of its own, from this thread, so the builders never wait
    on each other's rows. SQLite has one writer: one after the other."""
    if view_db.kind != "postgres" or len(statements) < 2:
        for statement in statements:
            with view_db.transaction() as cursor:
                cursor.execute(statement)
                if on_each is not None:
                    on_each(cursor)
        return

    def build(statement: str) -> None:
        with view_db.transaction() as cursor:
            cursor.execute(statement)

    with ThreadPoolExecutor(max_workers=INDEX_BUILDERS, thread_name_prefix="subledger-index") as pool:
        for _ in pool.map(build, statements):  # in order; re-raises a build's failure
            if on_each is not None:
                with view_db.transaction() as cursor:
                    on_each(cursor)


class _DeferIndexes(ViewCursor):
    """A cursor that keeps `CREATE INDEX` statements aside instead of running them."""

    def __init__(self, cursor: ViewCursor, deferred: list[str]) -> None:
        super().__init__(cursor._raw, cursor._convert)
        self._deferred = deferred

    def execute(self, sql: str, params: Sequence[Any] = ()) -> ViewCursor:
        if sql.lstrip().upper().startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
            self._deferred.append(sql)
            return self
        return super().execute(sql, params)


def copies_position(view_db: ViewDatabase, copies: Sequence[Any]) -> int:
    """Where the copies stand; they move together, so they must agree."""
    with view_db.transaction(readonly=True) as cursor:
        positions = {
            int(cursor.execute("SELECT position FROM projection_tracking WHERE name = ?", (c.tracking_name,)).fetchone()["position"])
            for c in copies
        }
    if len(positions) != 1:
        raise RuntimeError(f"copies out of step: {sorted(positions)}")
    return positions.pop()


def fill_copies(
    ledger: Any,
    view_db: ViewDatabase,
    copies: Sequence[Any],
    *,
    until: int | None = None,
    batch_size: int = BULK_BATCH_SIZE,
    progress: Progress | None = None,
    on_batch: Callable[[Any], None] | None = None,
    on_events: Callable[[list[tuple[int, Any]]], None] | None = None,
) -> int:
    """Apply the log to `copies` up to `until` (default: the head now); returns events applied.
    `on_batch(cursor)` runs inside each batch's transaction (e.g. a heartbeat); `on_events`
    gets each batch's (position, event) pairs once the copies have them, so another consumer
    of the whole log (audit verify's replay) need not read and decode it again."""
    target = (ledger.recorder.max_notification_id() or 0) if until is None else until
    position = copies_position(view_db, copies)
    applied = 0

    def read(start: int) -> tuple[int, list[tuple[int, Any]]]:
        notifications = ledger.recorder.select_notifications(
            start=start, limit=batch_size, stop=target, inclusive_of_start=False
        )
        if not notifications:
            return start, []
        return notifications[-1].id, list(zip((n.id for n in notifications), ledger.mapper.to_domain_events(notifications)))

    while position < target:
        end, events = read(position)
        if not events:
            break
        # Not durable: the copies are not live, a rebuild killed before its switch drops
        # them, and the switch's own (durable) commit makes every batch before it durable.
        with view_db.transaction(durable=False) as cursor:
            for copy in copies:
                move_position(cursor, copy.tracking_name, position, end)
                copy.apply(cursor, events)
            if on_batch is not None:
                on_batch(cursor)
        if on_events is not None:
            on_events(events)
        position = end
        applied += len(events)
        if progress is not None:
            progress(applied, position, target)
    return applied
