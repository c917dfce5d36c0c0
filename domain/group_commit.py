"""Group commit: several commands' events written in one transaction.

eventsourcing writes each `save()` in its own transaction, and its PostgreSQL
recorder takes a table lock per insert, so concurrent commands queue behind
each other's commits (about 5% of raw insert throughput). Here a command that
is ready to save joins a queue; whichever thread finds no save in progress
becomes the leader and writes everything queued so far in one `save(...)`,
while the next commands gather for the following batch. No thread waits on a
timer: a batch is simply what accumulated during the previous write.

Aggregates of one batch never overlap: a command holds its aggregates' locks
until its save returns (`Ledger.run`). If a batch conflicts with another
process's write (or a repeated idempotency record), nothing of it was written (one
transaction). When the database names the aggregate version it found already recorded
(`VersionConflict`: PostgreSQL's unique violation does), the command holding that aggregate
gets the conflict and the rest of the batch is written again together: one conflict costs
one transaction more. Otherwise (SQLite names no key) the batch is split in halves, each
written the same way, down to single commands, so only the one that really conflicted
sees the conflict: one conflicting command in a batch of 64 costs about 12 transactions
more, not 64 (every command alone, as it was before).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError


class VersionConflict(IntegrityError):
    """A write refused because one of its events' (aggregate, version) was already recorded:
    another writer changed that aggregate first. Raised by recorders that can tell which
    (the PostgreSQL one, `subledger/pg_recorder.py`), so a batch fails only the command
    that holds the aggregate; a plain `IntegrityError` still means "somewhere in this write"."""

    def __init__(self, message: str, originator_id: UUID, originator_version: int) -> None:
        super().__init__(message)
        self.originator_id = originator_id
        self.originator_version = originator_version

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args), and args holds only the message: a charge process
        # hands its errors to the worker pickled.
        return (type(self), (str(self), self.originator_id, self.originator_version))


class _Entry:
    __slots__ = ("aggregates", "done", "error", "batch")

    def __init__(self, aggregates: Sequence[Any]) -> None:
        self.aggregates = aggregates
        self.done = threading.Event()
        self.error: BaseException | None = None
        #: Commands written in the same transaction as this one (itself included).
        self.batch = 1


class GroupCommitter:
    def __init__(self, save: Callable[..., Any], max_batch: int = 64) -> None:
        self._save = save
        self._max_batch = max_batch
        self._queue: list[_Entry] = []
        self._lock = threading.Lock()
        self._leading = False
        #: Transactions tried and commands written so far (only the leader counts); their
        #: ratio is the mean batch, which `subledger bench ledger` reports.
        self.transactions = 0
        self.commands = 0

    def save(self, *aggregates: Any) -> int:
        """Save `aggregates` atomically, possibly in one transaction with other commands';
        answers how many commands that transaction wrote (a ledger span's attribute)."""
        entry = _Entry(aggregates)
        with self._lock:
            self._queue.append(entry)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.batch

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                if not batch:
                    self._leading = False
                    return
            self._write(batch)

    def _write(self, batch: list[_Entry]) -> None:
        self.transactions += 1
        if len(batch) == 1:
            entry = batch[0]
            try:
                self._save(*entry.aggregates)
            except BaseException as error:  # handed to the command that owns these aggregates
                entry.error = error
            else:
                self.commands += 1
            entry.done.set()
            return
        aggregates = [aggregate for entry in batch for aggregate in entry.aggregates]
        # save() takes the pending events off the aggregates; keep them to put back on failure.
        pending = [list(aggregate.pending_events) for aggregate in aggregates]
        try:
            self._save(*aggregates)
        except Exception as error:
            # Nothing was written (one transaction): give every aggregate its events back.
            for aggregate, events in zip(aggregates, pending):
                aggregate.pending_events[:] = events
            holder = _holder(batch, error)
            if holder is not None:
                # The conflict is that command's alone; the others are written together again.
                holder.error = error
                holder.done.set()
                self._write([entry for entry in batch if entry is not holder])
                return
            # Not named: write each half on its own.
            middle = len(batch) // 2
            self._write(batch[:middle])
            self._write(batch[middle:])
        else:
            self.commands += len(batch)
            for entry in batch:
                entry.batch = len(batch)
                entry.done.set()


def _holder(batch: list[_Entry], error: BaseException) -> _Entry | None:
    """The command of `batch` holding the aggregate a `VersionConflict` names (None: not named)."""
    if not isinstance(error, VersionConflict):
        return None
    for entry in batch:
        if any(aggregate.id == error.originator_id for aggregate in entry.aggregates):
            return entry
    return None
