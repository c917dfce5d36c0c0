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
transaction); the batch is then split in halves, each written the same way, down to
single commands, so only the one that really conflicted sees the conflict. One
conflicting command in a batch of 64 costs about 12 transactions more, not 64
(every command alone, as it was before).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


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
        if len(batch) == 1:
            entry = batch[0]
            try:
                self._save(*entry.aggregates)
            except BaseException as error:  # handed to the command that owns these aggregates
                entry.error = error
            entry.done.set()
            return
        aggregates = [aggregate for entry in batch for aggregate in entry.aggregates]
        # save() takes the pending events off the aggregates; keep them to put back on failure.
        pending = [list(aggregate.pending_events) for aggregate in aggregates]
        try:
            self._save(*aggregates)
        except Exception:
            # Nothing was written (one transaction): give every aggregate its events back
            # and write each half on its own.
            for aggregate, events in zip(aggregates, pending):
                aggregate.pending_events[:] = events
            middle = len(batch) // 2
            self._write(batch[:middle])
            self._write(batch[middle:])
        else:
            for entry in batch:
                entry.batch = len(batch)
                entry.done.set()
