"""The rate limiter's in-process storage (no `SUBLEDGER_REDIS_URL`): limits' own
`MemoryStorage`, with its clean-up paced.

limits 5.8's asyncio `MemoryStorage` starts a clean-up pass on every counted call
whenever none is running, and the pass hands every caller's entry list to a thread
(`asyncio.to_thread`) to find its expired entries. Under steady traffic a pass is
therefore always running, at one thread hand-off per caller seen in the last window:
measured on a 2-core machine, 2,000 counted calls 2 ms apart over 200 callers cost
about 2 ms of CPU per call, against about 0.2 ms with one caller.

The clean-up only bounds memory: whether a call is let through is decided from the
entries' own times (`acquire_entry`, `get_moving_window`), expired entries or not. So
here a pass starts at most once every `interval` seconds, and it trims each list in
the event loop itself: with no `await` inside it, no counted call can run halfway
through it, which is what limits' per-key locks were guarding. Entries older than the
window are gone within `interval` seconds of the next counted call.

It extends limits through the two hooks its storage calls on itself
(`__schedule_expiry`, `__expire_events`, name-mangled); the import below refuses
a limits release without them, so an upgrade cannot silently bring the old
behaviour back (limits is pinned in pyproject.toml).
"""
from __future__ import annotations

import bisect
import time

from limits.aio.storage import MemoryStorage

#: Seconds between two clean-up passes at most.
EXPIRY_INTERVAL_SECONDS = 1.0

for _hook in ("_MemoryStorage__schedule_expiry", "_MemoryStorage__expire_events"):
    if not hasattr(MemoryStorage, _hook):
        raise ImportError(f"limits.aio.storage.MemoryStorage has no {_hook}: check schema/rate_limit_memory.py")


class PacedMemoryStorage(MemoryStorage):
    def __init__(self, interval: float = EXPIRY_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self._next_pass = 0.0
        #: Clean-up passes run so far.
        self.passes = 0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_pass:
            return
        self._next_pass = now + self.interval
        self._MemoryStorage__expire_events()

    def _MemoryStorage__expire_events(self) -> None:  # type: ignore[override]
        """Drop expired entries and counters (limits' own pass, without the thread hand-offs)."""
        self.passes += 1
        now = time.time()
        for key, events in list(self.events.items()):
            # Entries are kept newest first: those past their expiry are the tail.
            kept = events[: bisect.bisect_left(events, -now, key=lambda event: -event.expiry)]
            if kept:
                self.events[key] = kept
            else:
                self.events.pop(key, None)
                self.locks.pop(key, None)
        for key, expiry in list(self.expirations.items()):
            if expiry <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)
