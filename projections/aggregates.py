"""Which aggregates the ledger holds, of what type, and whose (the audit index).

`events(userId)` and `exportUserData` need a user's aggregates; most events
name no user, only their aggregate's id. By convention every aggregate that
belongs to a user names them in its first event (`user_id`), so one row per
aggregate, written when its version-1 event passes, is enough: a small table
(one row per aggregate, not per event) that stays cheap to rebuild.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.database import ViewCursor, ViewDatabase
from projections.runner import Tracked


def aggregate_type(event: Any) -> str:
    """`Wallet` for a `Wallet.Credited` event: the class the event is nested in."""
    return type(event).__qualname__.split(".")[0]


class AggregatesProjection:
    name = "aggregates"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.tracking_name = prefix + self.name
        self.table = prefix + "ledger_aggregates"

    def create_tables(self, cursor: ViewCursor) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " aggregate_id TEXT PRIMARY KEY, aggregate_type TEXT NOT NULL, user_id TEXT,"
            " created_position BIGINT NOT NULL)"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_user ON {self.table} (user_id, created_position)")

    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        rows = [
            (str(event.originator_id), aggregate_type(event), _owner(event), position)
            for position, event in events
            if event.originator_version == 1
        ]
        cursor.insert_rows(self.table, ("aggregate_id", "aggregate_type", "user_id", "created_position"), rows)

    # ------------------------------------------------------------ reading
    def of_user(self, view_db: ViewDatabase, user_id: str) -> list[dict[str, Any]]:
        """The user's aggregates (id, type), oldest first."""
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT aggregate_id, aggregate_type FROM {self.table} WHERE user_id = ? ORDER BY created_position",
                (user_id,),
            ).fetchall()


def _owner(event: Any) -> str | None:
    user_id = getattr(event, "user_id", None)
    return user_id if isinstance(user_id, str) else None
