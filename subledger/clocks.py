"""Clock adapters: the system clock, and the test clock kept in the ledger."""
from __future__ import annotations

from datetime import datetime, timezone

from domain.ledger import Ledger


class SystemClock:
    controllable = False

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def advance_to(self, when: datetime) -> None:
        raise RuntimeError("the system clock cannot be moved")


class TestClock:
    """Moves only through `advance_to`; its time is an aggregate in the ledger, so
    every process on the same database (api, worker) and a restart see the same time."""

    controllable = True
    __test__ = False  # not a pytest class

    def __init__(self, ledger: Ledger, start: datetime | None) -> None:
        self.ledger = ledger
        self.start = start or datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self.ledger.test_clock_now(default=self.start)

    def advance_to(self, when: datetime) -> None:
        self.ledger.advance_test_clock(when)
