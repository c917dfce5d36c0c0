"""Following the ledger's notification log into a read model.

A runner reads notifications in batches after the position its projection has
recorded, hands the decoded events to the projection and records the new
position in the same view transaction: a batch is applied whole or not at
all, so a restart resumes exactly where the last commit left off.

Notification ids can have gaps (a failed insert consumes a sequence value), so
the position is always the last id seen, never a count.

A process's live runners are followed together by one thread
(projections/follower.py), which the jobs catch up through too; `catch_up` here is
for callers that need these read models up to date on their own (`audit verify`, tests).

A runner given a projection without prefix runs the live read model: it
follows `projection_generations` (projections/generations.py), so after a
rebuild switched the live tables it carries on in the new ones. A runner
given a prefixed projection (a copy being built) stays on its own tables.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from domain.tracing import NO_TRACER, Tracer
from projections.database import ViewCursor, ViewDatabase
from projections.generations import GENERATIONS_DDL, LiveProjection, live_prefix, with_prefix

log = logging.getLogger(__name__)

#: (notification id, decoded domain event)
Tracked = tuple[int, Any]

TRACKING_DDL = "CREATE TABLE IF NOT EXISTS projection_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)"


#: Times a runner's setup, or one batch, is tried when the database aborts it to break a deadlock.
DEADLOCK_ATTEMPTS = 5


class Projection(Protocol):
    #: Public name (status, rebuild).
    name: str
    #: Key of its row in projection_tracking: `prefix + name`, so a copy built
    #: beside the live one (its own table prefix) tracks its own position.
    #: The class is built as `cls(prefix=...)` (projections/generations.py).
    tracking_name: str
    #: The shape and meaning of its tables; a change makes `subledger migrate` rebuild it
    #: (projections/versions.py).
    version: int

    def create_tables(self, cursor: ViewCursor) -> None:
        """Create this projection's tables if missing (idempotent)."""

    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        """Apply one batch, in log order, inside the runner's transaction."""


class PositionMoved(Exception):
    """Another runner recorded a batch for the same projection first."""


def move_position(cursor: ViewCursor, tracking_name: str, start: int, end: int) -> None:
    """Record a batch's end as the read model's position if it is still `start` (compare-and-set
    first: on PostgreSQL it locks the tracking row, so a concurrent runner waits, then finds the
    position moved and writes nothing); PositionMoved if another runner went first."""
    cursor.execute(
        "UPDATE projection_tracking SET position = ? WHERE name = ? AND position = ?", (end, tracking_name, start)
    )
    if cursor.rowcount != 1:
        raise PositionMoved(tracking_name)


class ProjectionRunner:
    def __init__(
        self, ledger: Any, projection: Projection, view_db: ViewDatabase, *, batch_size: int = 500, create: bool = True
    ) -> None:
        """`create`: make the read model's tables when missing (tests, `subledger migrate`); False
        when the database was migrated first (projections/versions.py): then nothing is created."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.ledger = ledger
        self.view_db = view_db
        self.batch_size = batch_size
        self._advanced = threading.Condition()
        #: (tracking name, position) this runner last read or recorded. A position only moves
        #: forward and a rebuild switches to tables with a new tracking name, so while the
        #: ledger's head is not past it there is nothing to apply: an idle follower's poll is
        #: then one read of the head, not a view transaction as well. The next batch starts
        #: there too; `PositionMoved` (another runner went first) clears it.
        self._known: tuple[str, int] | None = None
        self._name = projection.name
        #: A span per applied batch (`projection.batch`); a real tracer from the composition root.
        self.tracer: Tracer = NO_TRACER
        self._create = create
        self._live = LiveProjection(projection, view_db, create=create)
        # A process starting beside running ones (a second API, a worker, a CLI command) can
        # deadlock here with a follower: this transaction's CREATE ... IF NOT EXISTS locks the
        # read model's tables, the follower holds the tracking row and writes those tables.
        # PostgreSQL then aborts one of the two; the setup is idempotent, so it runs again.
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                self._live.set(self._set_up(projection))
                break
            except Exception as error:
                if attempt == DEADLOCK_ATTEMPTS or not view_db.chose_to_abort(error):
                    raise
                log.warning("projection=%s setup aborted to break a deadlock; running it again", projection.name)

    def _set_up(self, projection: Any) -> Any:
        with self.view_db.transaction(readonly=not self._create) as cursor:
            if self._create:
                cursor.execute(TRACKING_DDL)
                cursor.execute(GENERATIONS_DDL)
            if self._live.follows:
                projection = with_prefix(projection, live_prefix(cursor, projection.name) or "")
            if not self._create:
                return projection
            projection.create_tables(cursor)
            cursor.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                (projection.tracking_name,),
            )
        return projection

    @property
    def name(self) -> str:
        return self._name

    @property
    def projection(self) -> Any:
        return self._live.current()

    def current(self, refresh: bool = False) -> Any:
        """The projection over the live tables (projections/generations.py)."""
        return self._live.current(refresh)

    # ------------------------------------------------------------ positions
    def position(self) -> int:
        return self._position_of(self.current())

    def _position_of(self, projection: Any) -> int:
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                "SELECT position FROM projection_tracking WHERE name = ?", (projection.tracking_name,)
            ).fetchone()
        position = int(row["position"]) if row else 0
        self._known = (projection.tracking_name, position)
        return position

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    # ------------------------------------------------------------ applying
    def catch_up(self, until: int | None = None) -> int:
        """Apply batches until the position reaches `until` (default: the head
        now); returns the number of events applied."""
        target = self.head() if until is None else until
        applied = 0
        aborted = 0
        while True:
            try:
                count = self._apply_next_batch(target)
            except PositionMoved:
                # Another runner got there first (or a rebuild switched the tables): carry on from there.
                self.moved_on()
                continue
            except Exception as error:
                # A process starting beside this one (its setup locks the read model's tables, then
                # waits for the tracking row this batch holds) can deadlock with it; when PostgreSQL
                # aborts this batch rather than the setup, nothing of it was written, so it runs
                # again (`audit verify`'s catch-up would fail otherwise; the follower does the same).
                aborted += 1
                if aborted == DEADLOCK_ATTEMPTS or not self.view_db.chose_to_abort(error):
                    raise
                log.warning("projection=%s batch aborted to break a deadlock; running it again", self._name)
                continue
            if count == 0:
                return applied
            applied += count
        return applied

    def next_start(self) -> tuple[Any, int]:
        """The live projection and the position its next batch starts after."""
        projection = self.current()
        known = self._known
        if known is not None and known[0] == projection.tracking_name:
            # Trusted without reading it again: if another runner moved it meanwhile, the
            # compare-and-set in `apply_batch` finds out and the caller reads it afresh. Saves
            # a transaction per batch (the live follower's batches are small under load).
            return projection, known[1]
        return projection, self._position_of(projection)

    def _apply_next_batch(self, stop: int) -> int:
        projection, start = self.next_start()
        if start >= stop:
            return 0
        notifications = self.ledger.recorder.select_notifications(
            start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        if not notifications:
            return 0
        events = list(zip((n.id for n in notifications), self.ledger.mapper.to_domain_events(notifications)))
        self.apply_batch(projection, events, start)
        return len(events)

    def apply_batch(self, projection: Any, events: Sequence[Tracked], start: int) -> None:
        """Apply decoded `events` (read after `start`) and move the position to the last one, in one
        view transaction; PositionMoved if another runner recorded a batch from `start` first."""
        try:
            with self.view_db.transaction() as cursor:
                end = self.write_batch(cursor, projection, events, start)
        except BaseException:
            self._known = None
            raise
        self.batch_committed(projection, end)

    def write_batch(self, cursor: ViewCursor, projection: Any, events: Sequence[Tracked], start: int) -> int:
        """Inside the caller's view transaction: move the position from `start` to the last event's
        (PositionMoved if another runner went first) and apply `events`; returns the new position.
        The caller commits, then calls `batch_committed` (LogFollower applies one batch to several
        read models in one transaction this way)."""
        end = events[-1][0]
        attributes = {"subledger.projection": self._name, "subledger.events": len(events), "subledger.position": end}
        with self.tracer.span("projection.batch", attributes):
            move_position(cursor, projection.tracking_name, start, end)
            projection.apply(cursor, events)
        return end

    def batch_committed(self, projection: Any, end: int) -> None:
        """The transaction holding this read model's batch up to `end` committed."""
        self._known = (projection.tracking_name, end)
        with self._advanced:
            self._advanced.notify_all()

    def moved_on(self) -> None:
        """Another runner went first (PositionMoved) or a rebuild switched the tables: read afresh."""
        self._known = None
        self.current(refresh=True)

    # ------------------------------------------------------------ waiting
    def wait_until(self, position: int, timeout: float) -> bool:
        """Block until this projection has applied `position` (by any runner); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.position() < position:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._advanced:
                # Re-check at least every 50 ms: another process may be the one applying.
                self._advanced.wait(min(left, 0.05))
        return True
