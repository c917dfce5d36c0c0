"""The test clock's time, kept in the ledger so that a restart keeps it.

Only used when SUBLEDGER_CLOCK=test; it never moves backwards.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.errors import InvalidInput
from domain.ids import NAMESPACE

TEST_CLOCK_ID = uuid5(NAMESPACE, "test-clock")


class TestClockState(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return TEST_CLOCK_ID

    @event("Started")
    def __init__(self, now: datetime) -> None:
        self.now = now

    def advance(self, to: datetime) -> None:
        if to < self.now:
            raise InvalidInput(f"the test clock cannot move backwards (now {self.now.isoformat()})")
        if to != self.now:
            self._advanced(to=to)

    @event("Advanced")
    def _advanced(self, to: datetime) -> None:
        self.now = to
