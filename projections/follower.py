"""One thread that follows the ledger's log into all of a process's read models.

Every save in the process wakes it (`notify`, a ledger listener); otherwise it polls
the log's head every `poll_interval`. It reads the head once, then, for the read
models that are behind, reads each batch of notifications once and decodes it
once, and hands it to every read model standing at that position in one view
transaction, each read model moving its own position in it (compare-and-set,
`ProjectionRunner.write_batch`). Read models stay independent: if any of them fails
in that transaction, nothing of it is kept and the batch goes to each read model in
a transaction of its own (`ProjectionRunner.apply_batch`): one that another process
moved first, or that a rebuild switched to new tables, reads its position afresh and
carries on from there; one whose batch fails is retried after a pause while the
others go on; a batch PostgreSQL aborted to break a deadlock runs again.

Jobs catch up through it too (`catch_up(strict=True)`), so the daily runs read the
head once and each batch once for all read models.

It replaced a thread per read model, each polling the head and reading and decoding
the same notifications for itself: seven head reads per poll and seven reads and
decodes per save (docs/performance.md).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from projections.runner import DEADLOCK_ATTEMPTS, PositionMoved, ProjectionRunner

log = logging.getLogger(__name__)

#: How long a busy follower waits for more events before its next batch (bounds the added lag).
COALESCE_SECONDS = 0.02
#: The longest pause before a failing read model is tried again.
MAX_BACKOFF_SECONDS = 5.0


class LogFollower:
    def __init__(self, ledger: Any, runners: Sequence[ProjectionRunner], *, poll_interval: float = 0.05,
                 batch_size: int = 500) -> None:
        self.ledger = ledger
        self.runners = list(runners)
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: runner name -> (consecutive failures, monotonic time before which it is not tried)
        self._failing: dict[str, tuple[int, float]] = {}
        self._pass_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._follow, name="projections", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake the follower now (call after a command saved events in this process)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10) -> None:
        """Stop between batches (never inside one) and wait for the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _follow(self) -> None:
        while not self._stopping.is_set():
            # Cleared before reading the head, so a nudge that arrives during the
            # pass makes the wait below return at once.
            self._wake.clear()
            try:
                applied = self.catch_up()
            except Exception:  # reading the log itself failed (the database is away): try again soon
                log.exception("projections: reading the ledger's log failed; retrying")
                self._stopping.wait(1.0)
                continue
            if applied:
                # Under load, let the next few milliseconds of commands gather into one batch:
                # one view transaction per command would cost more than the commands did.
                self._stopping.wait(COALESCE_SECONDS)
            else:
                self._wake.wait(self.poll_interval)

    def catch_up(self, *, strict: bool = False) -> int:
        """One pass: bring the read models up to the head as it is now; returns the number of
        events read and applied. The follower's own passes skip a failing read model for a while
        and go on with the others; a `strict` pass (a job that reads the read models next) tries
        every one and raises what fails, as `ProjectionRunner.catch_up` does."""
        # One pass at a time in this process: a job's pass and the thread's would otherwise
        # read, decode and try the same batches, and all but one of each would be refused.
        with self._pass_lock:
            return self._pass(strict)

    def _pass(self, strict: bool) -> int:
        head = self.ledger.recorder.max_notification_id() or 0
        applied = 0
        aborted = 0
        while strict or not self._stopping.is_set():
            starts: dict[int, list[tuple[ProjectionRunner, Any]]] = {}
            now = time.monotonic()
            for runner in self.runners:
                if not strict and self._failing.get(runner.name, (0, 0.0))[1] > now:
                    continue
                try:
                    projection, start = runner.next_start()
                except Exception as error:
                    if strict:
                        raise
                    self._failed(runner, error)
                    continue
                if start < head:
                    starts.setdefault(start, []).append((runner, projection))
            if not starts:
                return applied
            # The furthest behind first; the others reach its position and then move together.
            start = min(starts)
            notifications = self.ledger.recorder.select_notifications(
                start=start, limit=self.batch_size, stop=head, inclusive_of_start=False
            )
            if not notifications:
                return applied
            events = list(zip((n.id for n in notifications), self.ledger.mapper.to_domain_events(notifications)))
            if self._apply_together(starts[start], events, start):
                applied += len(events)
                continue
            for runner, projection in starts[start]:
                if not self._apply(runner, projection, events, start, strict):
                    aborted += 1
                    if aborted == DEADLOCK_ATTEMPTS and strict:
                        raise RuntimeError(f"projection {runner.name}: batch aborted {aborted} times to break deadlocks")
            applied += len(events)
        return applied

    def _apply_together(self, group: list[tuple[ProjectionRunner, Any]], events: list[Any], start: int) -> bool:
        """Apply one batch to every read model of `group` in one view transaction: one commit for
        all instead of one each (most batches are small: a command's few events). False, with
        nothing written, when any of them fails (another runner went first, a deadlock, a bad
        event): the caller then applies the batch to each read model on its own, which keeps
        them independent (the failing one is retried later, the others go on)."""
        view_db = group[0][0].view_db
        if len(group) < 2 or any(runner.view_db is not view_db for runner, _ in group):
            return False
        try:
            with view_db.transaction() as cursor:
                ends = [runner.write_batch(cursor, projection, events, start) for runner, projection in group]
        except Exception as error:
            log.debug("projections: a batch for %d read models fell back to one transaction each: %r", len(group), error)
            return False
        for (runner, projection), end in zip(group, ends):
            runner.batch_committed(projection, end)
            self._failing.pop(runner.name, None)
        return True

    def _apply(self, runner: ProjectionRunner, projection: Any, events: list[Any], start: int, strict: bool) -> bool:
        """Apply one batch to one read model; False when the database aborted it to break a deadlock."""
        try:
            runner.apply_batch(projection, events, start)
        except PositionMoved:
            runner.moved_on()  # another runner went first: the next round reads its position
            return True
        except Exception as error:
            if runner.view_db.chose_to_abort(error):
                # Nothing of it was written; the next round runs it again.
                log.warning("projection=%s batch aborted to break a deadlock; running it again", runner.name)
                return False
            if strict:
                raise
            self._failed(runner, error)
            return True
        self._failing.pop(runner.name, None)
        return True

    def _failed(self, runner: ProjectionRunner, error: Exception) -> None:
        failures = self._failing.get(runner.name, (0, 0.0))[0] + 1
        pause = min(MAX_BACKOFF_SECONDS, self.poll_interval * 2**failures)
        self._failing[runner.name] = (failures, time.monotonic() + pause)
        log.error("projection=%s failures=%d catch_up failed; retrying in %.2fs", runner.name, failures, pause,
                  exc_info=error)
