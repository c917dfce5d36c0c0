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
"""
from __future__ import annotations

import threading
from typing import Any

from eventsourcing.application import Repository
from eventsourcing.persistence import EventStore


class LedgerRepository(Repository):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._without_snapshots = threading.local()
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def snapshot_store(self) -> EventStore[Any] | None:
        if getattr(self._without_snapshots, "on", False):
            return None
        return self._snapshot_store

    @snapshot_store.setter
    def snapshot_store(self, store: EventStore[Any] | None) -> None:
        self._snapshot_store = store

    def get(self, aggregate_id: Any, *, snapshots: bool = True, **kwargs: Any) -> Any:
        """eventsourcing's `get`; `snapshots=False` for a type that is never snapshotted."""
        if snapshots:
            return super().get(aggregate_id, **kwargs)
        self._without_snapshots.on = True
        try:
            return super().get(aggregate_id, **kwargs)
        finally:
            self._without_snapshots.on = False
