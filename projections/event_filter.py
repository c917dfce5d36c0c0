"""Which event classes a projection does anything with, decided once per class.

Most of the ledger's events are spends, and most read models have nothing to do with
them; testing every event against a chain of `isinstance` checks, in a batch's set-up
and again in its loop, cost the outbox and the webhook events a good part of their
time in a rebuild (docs/performance.md). A filter answers `issubclass` once per class
and keeps the answer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class EventFilter:
    def __init__(self, *classes: type) -> None:
        self._classes = classes
        self._known: dict[type, bool] = {}

    def concerns(self, cls: type) -> bool:
        found = self._known.get(cls)
        if found is None:
            # Two threads may both work it out: the same answer, written twice.
            found = self._known[cls] = issubclass(cls, self._classes)
        return found

    def keep(self, events: Sequence[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """The (position, event) pairs whose event's class concerns the projection, in order."""
        # A batch holds a handful of classes: decided once per class, then tested by set membership.
        kept = {cls for cls in {type(event) for _, event in events} if self.concerns(cls)}
        return [pair for pair in events if type(pair[1]) in kept]
