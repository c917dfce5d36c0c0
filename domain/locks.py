"""Per-aggregate locks inside one process.

Optimistic concurrency alone keeps the ledger correct across processes, but
fifty callers racing on one wallet in one process would mostly burn their
retries on each other. Serialising commands per aggregate inside the process
turns those into a queue; across processes the version check still decides.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Hashable
from weakref import WeakValueDictionary


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: WeakValueDictionary[Hashable, threading.Lock] = WeakValueDictionary()
        self._guard = threading.Lock()

    def _lock(self, key: Hashable) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.Lock()
                self._locks[key] = lock
            return lock

    @contextmanager
    def hold(self, *keys: Hashable) -> Iterator[None]:
        # A fixed order (sorted by str) so two commands locking the same pair never deadlock.
        locks = [self._lock(key) for key in sorted(set(keys), key=str)]
        with ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            yield
