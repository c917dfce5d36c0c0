"""The ledger's events in global order, for auditors (`events`, exports, `audit replay`).

The one reader allowed to scan the event table at request time. Unfiltered
pages come through eventsourcing's notification log; pages of chosen
aggregates read eventsourcing's table directly, because
its API gives an aggregate's events without their global positions. Every
event is decoded by the ledger's own mapper, so personal fields read as
their value or, once erased, as None; credentials (billing keys) are then
replaced by "[sealed]" (`domain.personal_data.redact`), so no page of the
log - `events`, exports, `audit replay` - ever shows one.

A position is the event's notification id: strictly increasing in log order,
never filled in later below a position already seen (eventsourcing locks the
table on insert), but not necessarily consecutive (a failed insert consumes an id).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.errors import InvalidInput
from domain.personal_data import redact
from projections.aggregates import aggregate_type
from projections.database import ViewDatabase
from projections.keyset import MAX_POSITION

MAX_PAGE = 1000
#: Attributes every event has that the entry already shows (or that mean nothing to an auditor).
_HIDDEN = ("originator_id", "originator_version")


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    position: int
    aggregate_id: str
    aggregate_type: str
    version: int
    type: str
    occurred_at: dt.datetime
    data: dict[str, Any]


def entry(position: int, event: Any) -> LedgerEntry:
    state = {k: v for k, v in vars(event).items() if k not in _HIDDEN}
    return LedgerEntry(
        position=position,
        aggregate_id=str(event.originator_id),
        aggregate_type=aggregate_type(event),
        version=event.originator_version,
        type=type(event).__name__,
        # Business time (`at`) where the event has one; else when it was recorded.
        occurred_at=getattr(event, "at", None) or event.timestamp,
        data=redact(to_json(state)),
    )


def to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, UUID, Decimal)):
        return str(value)
    return value


def check_page(after: int | None, first: int) -> int:
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first!r}")
    if after is not None and not 0 <= after <= MAX_POSITION:
        raise InvalidInput(f"after must be a position (0 to {MAX_POSITION}), got {after}")
    return after or 0


class LedgerLog:
    def __init__(self, ledger: Any, view_db: ViewDatabase) -> None:
        self.ledger = ledger
        self.view_db = view_db
        self.table = ledger.recorder.events_table_name

    def page(self, after: int | None, first: int, aggregate_ids: Sequence[str] | None = None) -> list[LedgerEntry]:
        """Events after position `after`, oldest first; only those of `aggregate_ids` when given."""
        return self.read(check_page(after, first), first, aggregate_ids)

    def read(self, start: int, limit: int, aggregate_ids: Sequence[str] | None = None) -> list[LedgerEntry]:
        """Up to `limit` events after position `start` (checked by the caller), oldest first."""
        if aggregate_ids is None:
            notifications = self.ledger.recorder.select_notifications(
                start=start, limit=limit, inclusive_of_start=False
            )
            return [entry(n.id, event) for n, event in zip(notifications, self.ledger.mapper.to_domain_events(notifications))]
        if not aggregate_ids:
            return []
        selected = self._select(aggregate_ids, start, limit)
        events = self.ledger.mapper.to_domain_events([stored for _, stored in selected])
        return [entry(position, event) for (position, _), event in zip(selected, events)]

    def _select(self, aggregate_ids: Sequence[str], after: int, limit: int) -> list[tuple[int, StoredEvent]]:
        uuids = [UUID(str(a)) for a in aggregate_ids]
        sqlite = self.view_db.kind == "sqlite"
        # eventsourcing keeps ids as hex text and positions as rowids on SQLite, as uuid/notification_id on PostgreSQL.
        position = "rowid" if sqlite else "notification_id"
        params: list[Any] = [u.hex for u in uuids] if sqlite else uuids
        marks = ", ".join("?" * len(params))
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT {position} AS position, originator_id, originator_version, topic, state FROM {self.table}"
                f" WHERE originator_id IN ({marks}) AND {position} > ? ORDER BY {position} LIMIT ?",
                [*params, after, limit],
            ).fetchall()
        # Decoded after the transaction: the mapper may read keys through the same database.
        return [
            (
                int(row["position"]),
                StoredEvent(
                    originator_id=UUID(str(row["originator_id"])),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                ),
            )
            for row in rows
        ]
