"""The subscriptions read model: which subscriptions a user has, and which ones the
daily runs must look at, found through indexes instead of scanning the ledger.

Every Subscription event carries the values it sets (status, next charge date,
period end, ...), so a row is kept current by copying the fields an event has,
without replaying the aggregate's rules here. Single subscriptions are always
read from the ledger; the jobs re-check each candidate there too, so a lagging
row can only delay work by a run, never make it happen twice.

Times are fixed-width UTC ISO text (as in wallet_history) so text order is time order.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from domain.errors import InvalidInput
from domain.periods import local_date
from domain.subscription import ACTIVE, CANCELING, CHARGEABLE, TRIALING, Subscription
from domain.subscription_rules import REMINDER_DAYS, local_midnight
from projections.database import ViewCursor, ViewDatabase
from projections.keyset import Keyset, Page, page_of, scope_of
from projections.runner import Tracked
from projections.wallet_history import to_utc_text

MAX_PAGE = 500
#: `subscriptionsPage` cursors: oldest first by the position of the Subscribed event.
CURSORS = Keyset("subscriptions")
#: `collections` cursors: newest first by the position of the Subscribed event.
COLLECTION_CURSORS = Keyset("collections")
#: Row columns an event may set, by the name the event carries them under.
COPIED = ("status", "plan_id", "cycle", "price", "next_charge_at", "period_end")
_TIMES = ("next_charge_at", "period_end", "trial_ends_at")


def _value(name: str, value: Any) -> Any:
    return to_utc_text(value) if name in _TIMES and value is not None else value


class SubscriptionsProjection:
    name = "subscriptions"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.table = f"{prefix}subscriptions"
        self.tracking_name = f"{prefix}{self.name}"

    def create_tables(self, cursor: ViewCursor) -> None:
        t = self.table
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " subscription_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, status TEXT NOT NULL,"
            " plan_id TEXT NOT NULL, cycle TEXT NOT NULL, price BIGINT NOT NULL, next_charge_at TEXT,"
            " period_end TEXT NOT NULL, trial_ends_at TEXT, seq BIGINT NOT NULL)"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {t}_user ON {t} (user_id, seq)")
        # Only subscriptions with a charge ahead are in the due index.
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {t}_due ON {t} (next_charge_at) WHERE next_charge_at IS NOT NULL")
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {t}_status_end ON {t} (status, period_end)")

    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        for seq, event in events:
            if not isinstance(event, Subscription.Event):
                continue
            sub_id = str(event.originator_id)
            if isinstance(event, Subscription.Subscribed):
                cursor.execute(
                    f"INSERT INTO {self.table} (subscription_id, user_id, status, plan_id, cycle, price,"
                    " next_charge_at, period_end, trial_ends_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        sub_id, event.user_id, event.status, event.plan_id, event.cycle, event.price,
                        _value("next_charge_at", event.next_charge_at), _value("period_end", event.period_end),
                        _value("trial_ends_at", event.trial_ends_at), seq,
                    ),
                )
                continue
            fields = vars(event)
            changes = [(name, _value(name, fields[name])) for name in COPIED if name in fields]
            if changes:
                assignments = ", ".join(f"{name} = ?" for name, _ in changes)
                cursor.execute(
                    f"UPDATE {self.table} SET {assignments} WHERE subscription_id = ?",
                    [*(value for _, value in changes), sub_id],
                )

    # ------------------------------------------------------------ reading
    def subscription_ids(self, view_db: ViewDatabase, user_id: str) -> list[str]:
        """The user's subscriptions, oldest first."""
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT subscription_id FROM {self.table} WHERE user_id = ? ORDER BY seq", (user_id,)
            ).fetchall()
        return [row["subscription_id"] for row in rows]

    def subscriptions_page(
        self, view_db: ViewDatabase, user_id: str, first: int, after: str | None = None
    ) -> Page[str]:
        """A page of the user's subscriptions, oldest first, after the cursor `after` (keyset on `seq`)."""
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first!r}")
        scope = scope_of(user_id)
        where, params = "user_id = ?", [user_id]
        if after is not None:
            (seq,) = CURSORS.decode(after, scope)
            where, params = where + " AND seq > ?", [*params, seq]
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT subscription_id, seq FROM {self.table} WHERE {where} ORDER BY seq LIMIT ?", [*params, first + 1]
            ).fetchall()
        page = page_of(rows, first, lambda row: CURSORS.encode(scope, row["seq"]))
        return Page([row["subscription_id"] for row in page.items], page.next_cursor)

    def due_for_charge_page(
        self, view_db: ViewDatabase, now: datetime, tz: tzinfo, after: tuple[str, str] | None, limit: int = 1000
    ) -> list[tuple[str, str]]:
        """Candidates of the 00:00 run: a charge (or trial end, retry, free renewal) dated
        today or earlier, local time (SPEC §3, due rule); one page of them, as
        (next_charge_at, subscription_id) after the keyset `after`: a run of 100,000
        renewals streams its candidates instead of loading them all."""
        tomorrow = local_midnight(local_date(now, tz) + timedelta(days=1), tz)
        marks = ", ".join("?" * len(CHARGEABLE))
        where = f"next_charge_at IS NOT NULL AND next_charge_at < ? AND status IN ({marks})"
        params: list[Any] = [to_utc_text(tomorrow), *CHARGEABLE]
        if after is not None:
            where += " AND (next_charge_at > ? OR (next_charge_at = ? AND subscription_id > ?))"
            params += [after[0], after[0], after[1]]
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT next_charge_at, subscription_id FROM {self.table} WHERE {where}"
                " ORDER BY next_charge_at, subscription_id LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [(row["next_charge_at"], row["subscription_id"]) for row in rows]

    def count_due_for_charge(self, view_db: ViewDatabase, now: datetime, tz: tzinfo) -> int:
        tomorrow = local_midnight(local_date(now, tz) + timedelta(days=1), tz)
        marks = ", ".join("?" * len(CHARGEABLE))
        with view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                f"SELECT COUNT(*) AS n FROM {self.table}"
                f" WHERE next_charge_at IS NOT NULL AND next_charge_at < ? AND status IN ({marks})",
                (to_utc_text(tomorrow), *CHARGEABLE),
            ).fetchone()
        return int(row["n"])

    def trials_ending(self, view_db: ViewDatabase, now: datetime, tz: tzinfo) -> list[str]:
        tomorrow = local_midnight(local_date(now, tz) + timedelta(days=1), tz)
        return self._ids(view_db, "status = ? AND period_end < ? ORDER BY period_end", (TRIALING, to_utc_text(tomorrow)))

    def cancellations_ended(self, view_db: ViewDatabase, now: datetime) -> list[str]:
        """CANCELING subscriptions whose period (or trial) has ended by `now`."""
        return self._ids(view_db, "status = ? AND period_end <= ? ORDER BY period_end", (CANCELING, to_utc_text(now)))

    def reminder_candidates(self, view_db: ViewDatabase, now: datetime, tz: tzinfo) -> list[str]:
        """ACTIVE or TRIALING subscriptions whose next charge or trial end falls on a local day
        a reminder may be owed for (`REMINDER_DAYS`: 7, 3 and 1 days ahead); the ledger decides
        which of them owe one today. Only those days, not the whole week ahead: each candidate
        costs the run a load of its aggregate, and on a spread of renewal dates this is 3 days
        in 30 of the subscriptions each morning rather than 7."""
        today = local_date(now, tz)
        windows, params = [], [ACTIVE, TRIALING]
        for column in ("next_charge_at", "trial_ends_at"):
            for days in sorted({d for owed in REMINDER_DAYS.values() for d in owed}):
                windows.append(f"({column} >= ? AND {column} < ?)")
                params += [to_utc_text(local_midnight(today + timedelta(days=days), tz)),
                           to_utc_text(local_midnight(today + timedelta(days=days + 1), tz))]
        return self._ids(view_db, f"status IN (?, ?) AND ({' OR '.join(windows)}) ORDER BY next_charge_at", params)

    def collection_page(
        self, view_db: ViewDatabase, statuses: Sequence[str], first: int, after: str | None = None
    ) -> Page[str]:
        """A page of the subscriptions whose status is one of `statuses` (`collections`: PAST_DUE
        and SUSPENDED), newest subscription first, after the cursor `after` (keyset on `seq`)."""
        scope = scope_of(*statuses)
        marks = ", ".join("?" * len(statuses))
        where, params = f"status IN ({marks})", list(statuses)
        if after is not None:
            (seq,) = COLLECTION_CURSORS.decode(after, scope)
            where, params = where + " AND seq < ?", [*params, seq]
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT subscription_id, seq FROM {self.table} WHERE {where} ORDER BY seq DESC LIMIT ?",
                [*params, first + 1],
            ).fetchall()
        page = page_of(rows, first, lambda row: COLLECTION_CURSORS.encode(scope, row["seq"]))
        return Page([row["subscription_id"] for row in page.items], page.next_cursor)

    def count_by_status(self, view_db: ViewDatabase) -> dict[str, int]:
        """How many subscriptions stand in each status now."""
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT status, COUNT(*) AS n FROM {self.table} GROUP BY status").fetchall()
        return {row["status"]: int(row["n"]) for row in rows}

    def _ids(self, view_db: ViewDatabase, where: str, params: Sequence[Any]) -> list[str]:
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT subscription_id FROM {self.table} WHERE {where}", params).fetchall()
        return [row["subscription_id"] for row in rows]


QUERIES = (
    "subscription_ids",
    "subscriptions_page",
    "due_for_charge_page",
    "count_due_for_charge",
    "trials_ending",
    "cancellations_ended",
    "reminder_candidates",
    "collection_page",
    "count_by_status",
)
