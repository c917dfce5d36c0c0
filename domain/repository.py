"""The ledger's repository: eventsourcing's, told when a load need not look for a snapshot.

eventsourcing's `Repository` looks in the snapshot table on every load that misses its
cache (one query), whatever the aggregate's type. The ledger snapshots only wallets and
subscriptions (`Ledger.snapshotting_intervals`), so for every other type (a customer, a
payment, an idempotency record) that query finds nothing: a renewal charge paid it once,
for the customer that holds the payment method. `get(..., snapshots=False)` leaves it out
and rebuilds the aggregate from its events alone, which is what any snapshot would have
been taken from, so the answer is the same either way.

The switch is per thread (the ledger's commands run on several at once) and is read through
the `snapshot_store` attribute that eventsourcing's own `get` consults; the cache, its
fast-forwarding and its locks stay eventsourcing's.

Within `trusting_cache()` (a command's first attempt, domain/cache_trust.py) a load that finds
its aggregate in the cache returns a copy of it as it stands, without the fast-forward query,
and notes the version it handed out so the command can have it checked (`moved_on`).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from copy import deepcopy
from typing import Any
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import EventStore

from domain.cache_trust import Contested


class LedgerRepository(Repository):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._without_snapshots = threading.local()
        self._trusting = threading.local()
        #: Aggregates found stale lately: loaded with the fast-forward even when trusting the cache.
        self.contested = Contested()
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def snapshot_store(self) -> EventStore[Any] | None:
        if getattr(self._without_snapshots, "on", False):
            return None
        return self._snapshot_store

    @snapshot_store.setter
    def snapshot_store(self, store: EventStore[Any] | None) -> None:
        self._snapshot_store = store

    @contextlib.contextmanager
    def trusting_cache(self, trust: bool = True) -> Iterator[dict[UUID, int]]:
        """Loads in this thread (when `trust`) take cached aggregates as they stand; yields the
        id and version of each copy so handed out. Without `trust` they fast-forward, also
        inside a command run from a trusting one."""
        unchecked: dict[UUID, int] = {}
        outer = getattr(self._trusting, "unchecked", None)
        self._trusting.unchecked = unchecked if trust and self.cache is not None else None
        try:
            yield unchecked
        finally:
            self._trusting.unchecked = outer

    def moved_on(self, versions: dict[UUID, int]) -> list[UUID]:
        """The aggregates of `versions` with events recorded after the version given: the query
        eventsourcing's fast-forward makes, without decoding what it finds."""
        recorder = self.event_store.recorder
        return [key for key, version in versions.items() if recorder.select_events(key, gt=version, limit=1)]

    def get(self, aggregate_id: Any, *, snapshots: bool = True, **kwargs: Any) -> Any:
        """eventsourcing's `get`; `snapshots=False` for a type that is never snapshotted."""
        unchecked = getattr(self._trusting, "unchecked", None)
        if unchecked is not None and kwargs.get("version") is None and aggregate_id not in self.contested:
            cached = self._cached_copy(aggregate_id)
            if cached is not None:
                unchecked[aggregate_id] = cached.version
                return cached
        if snapshots:
            return super().get(aggregate_id, **kwargs)
        self._without_snapshots.on = True
        try:
            return super().get(aggregate_id, **kwargs)
        finally:
            self._without_snapshots.on = False

    def _cached_copy(self, aggregate_id: Any) -> Any:
        """A copy of the cached aggregate, or None. Taken under eventsourcing's per-aggregate
        fast-forward lock, since a fast-forward in another thread changes the cached object in place."""
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    cached = self.cache.get(aggregate_id)  # type: ignore[union-attr]
                except KeyError:
                    return None
                return deepcopy(cached) if self.deepcopy_from_cache else cached
        finally:
            self._disuse_fastforward_lock(aggregate_id)
