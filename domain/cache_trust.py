"""A command's first attempt decides on the aggregate cache as it stands, then checks.

eventsourcing's repository fast-forwards every cached aggregate it hands out: one query for
events recorded after the cached version, which another process may have written. For a
command that query usually finds nothing, and it cost about 40% of a `spendPoints` in
process (`bench layers`, the command in 16 threads on PostgreSQL, old and new code in two
pairs on a 2-core machine: 0.660 and 0.607 → 0.381 and 0.397 ms of CPU per spend). A command's first attempt now skips it, and what the attempt decided is accepted
only when the database vouches for every copy it read that way
(`domain.ledger.Ledger._run`):

- an aggregate the command saves from the copy it read is checked by the save itself: its next
  version is already recorded if another process wrote it (eventsourcing's optimistic
  concurrency), the save conflicts, and the command decides again on fresh state. (A save of
  another, fresher copy of it vouches for that copy only: the old one is checked as below.)
- an aggregate it only read, and every aggregate of an attempt that ended in a refusal (a
  `DomainError`: too few points could have been decided on an old balance), is checked with
  the same query the fast-forward would have made, after the decision instead of before.

Either way a stale copy costs a second attempt, never a wrong answer. An aggregate found
stale is *contested* for a minute: its loads fast-forward as before, so aggregates that several
processes write in turn (two API processes sharing wallets) do not pay a conflict each time.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any
from uuid import UUID

#: How long an aggregate found stale is loaded with eventsourcing's fast-forward.
CONTESTED_SECONDS = 60.0


class Contested:
    """Aggregates found stale in this process's cache lately (another process wrote them)."""

    def __init__(self, seconds: float = CONTESTED_SECONDS) -> None:
        self.seconds = seconds
        self._until: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def mark(self, ids: Iterable[UUID]) -> None:
        until = time.monotonic() + self.seconds
        with self._lock:
            for aggregate_id in ids:
                self._until[aggregate_id] = until
            if len(self._until) > 10_000:  # forget what has expired
                now = time.monotonic()
                self._until = {key: end for key, end in self._until.items() if end > now}

    def __contains__(self, aggregate_id: Any) -> bool:
        until = self._until.get(aggregate_id)
        return until is not None and until > time.monotonic()
