"""The analytics read model (SPEC §7): what the business metrics are computed from,
so no analytics query ever reads the event table.

Tables (all times fixed-width UTC text, as in wallet_history):
- `analytics_payments`: one row per payment: who, which plan it paid for
  (`points` for point packages), amount, when it succeeded or failed.
- `analytics_refunds`: one row per refund, with the refunded payment's plan.
- `analytics_states`: each subscription's history as intervals
  [valid_from, valid_to) of (status, plan, cycle, list price, price); a row
  also keeps the values it replaced (`from_*`), so transitions (churn, plan
  changes) are rows too. Events that change nothing add no row.
- `analytics_trials`: each trial's planned end and when it first reached a paid period.
- `analytics_signups`: each user's first subscription (their signup).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.payments.payment import Payment
from domain.subscription import Subscription
from projections.database import ViewCursor, ViewDatabase
from projections.runner import Tracked
from projections.wallet_history import to_utc_text

POINTS_PLAN = "points"
_STATE_COLUMNS = ("status", "plan_id", "cycle", "list_price", "price")


class AnalyticsProjection:
    name = "analytics"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.tracking_name = prefix + self.name
        self.payments = prefix + "analytics_payments"
        self.refunds = prefix + "analytics_refunds"
        self.states = prefix + "analytics_states"
        self.trials = prefix + "analytics_trials"
        self.signups = prefix + "analytics_signups"

    def create_tables(self, cursor: ViewCursor) -> None:
        p, r, s = self.payments, self.refunds, self.states
        for statement in (
            f"""CREATE TABLE IF NOT EXISTS {p} (payment_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, plan_id TEXT,
                kind TEXT NOT NULL, amount BIGINT NOT NULL, requested_at TEXT NOT NULL, succeeded_at TEXT, failed_at TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {p}_succeeded ON {p} (succeeded_at)",
            f"CREATE INDEX IF NOT EXISTS {p}_failed ON {p} (failed_at)",
            f"CREATE INDEX IF NOT EXISTS {p}_user ON {p} (user_id)",
            f"""CREATE TABLE IF NOT EXISTS {r} (payment_id TEXT NOT NULL, seq BIGINT NOT NULL, user_id TEXT NOT NULL,
                plan_id TEXT, amount BIGINT NOT NULL, refunded_at TEXT NOT NULL, PRIMARY KEY (payment_id, seq))""",
            f"CREATE INDEX IF NOT EXISTS {r}_at ON {r} (refunded_at)",
            f"CREATE INDEX IF NOT EXISTS {r}_user ON {r} (user_id)",
            f"""CREATE TABLE IF NOT EXISTS {s} (subscription_id TEXT NOT NULL, seq BIGINT NOT NULL, user_id TEXT NOT NULL,
                valid_from TEXT NOT NULL, valid_to TEXT, status TEXT NOT NULL, plan_id TEXT NOT NULL, cycle TEXT NOT NULL,
                list_price BIGINT NOT NULL, price BIGINT NOT NULL, from_status TEXT, from_plan_id TEXT, from_cycle TEXT,
                from_list_price BIGINT, PRIMARY KEY (subscription_id, seq))""",
            f"CREATE INDEX IF NOT EXISTS {s}_from ON {s} (valid_from)",
            f"CREATE INDEX IF NOT EXISTS {s}_user ON {s} (user_id, valid_from)",
            f"""CREATE TABLE IF NOT EXISTS {self.trials} (subscription_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
                trial_ends_at TEXT NOT NULL, converted_at TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {self.trials}_ends ON {self.trials} (trial_ends_at)",
            f"CREATE TABLE IF NOT EXISTS {self.signups} (user_id TEXT PRIMARY KEY, signed_up_at TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.signups}_at ON {self.signups} (signed_up_at)",
        ):
            cursor.execute(statement)

    # ------------------------------------------------------------ writing
    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        # Payment rows are gathered and written once per batch (they touch no table the
        # subscription rows read); subscription intervals depend on the row before them,
        # so they are written as they come.
        payments = _PaymentWrites()
        for seq, event in events:
            if isinstance(event, Payment.Event):
                payments.add(seq, event)
            elif isinstance(event, Subscription.Event):
                self._subscription(cursor, seq, event)
        payments.flush(cursor, self)

    def _subscription(self, cursor: ViewCursor, seq: int, event: Any) -> None:
        sub_id, at = str(event.originator_id), to_utc_text(event.at)
        if isinstance(event, Subscription.Subscribed):
            cursor.execute(
                f"INSERT INTO {self.states} (subscription_id, seq, user_id, valid_from, status, plan_id, cycle,"
                " list_price, price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sub_id, seq, event.user_id, at, event.status, event.plan_id, event.cycle, event.list_price, event.price),
            )
            cursor.execute(
                f"INSERT INTO {self.signups} (user_id, signed_up_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
                (event.user_id, at),
            )
            if event.trial_ends_at is not None:
                cursor.execute(
                    f"INSERT INTO {self.trials} (subscription_id, user_id, trial_ends_at) VALUES (?, ?, ?)",
                    (sub_id, event.user_id, to_utc_text(event.trial_ends_at)),
                )
        elif isinstance(event, Subscription.PeriodPaid):
            self._transition(cursor, sub_id, seq, at, event.status, event.plan_id, event.cycle, event.list_price, event.price)
            cursor.execute(
                f"UPDATE {self.trials} SET converted_at = ? WHERE subscription_id = ? AND converted_at IS NULL", (at, sub_id)
            )
        elif isinstance(event, Subscription.PlanChanged):
            self._transition(cursor, sub_id, seq, at, None, event.plan_id, None, event.list_price, event.price)
        elif isinstance(
            event,
            (Subscription.ChargeFailed, Subscription.CancelScheduled, Subscription.Canceled,
             Subscription.Resumed, Subscription.Expired),
        ):
            self._transition(cursor, sub_id, seq, at, event.status, None, None, None, None)

    def _transition(self, cursor: ViewCursor, sub_id: str, seq: int, at: str, *values: Any) -> None:
        """Close the open interval and open one with `values` (None keeps a column), unless nothing changed."""
        keep = ", ".join(f"COALESCE(?, {c})" for c in _STATE_COLUMNS)
        same = " AND ".join(f"COALESCE(?, {c}) = {c}" for c in _STATE_COLUMNS)
        cursor.execute(
            f"INSERT INTO {self.states} (subscription_id, seq, user_id, valid_from, {', '.join(_STATE_COLUMNS)},"
            " from_status, from_plan_id, from_cycle, from_list_price)"
            f" SELECT subscription_id, ?, user_id, ?, {keep}, status, plan_id, cycle, list_price FROM {self.states}"
            f" WHERE subscription_id = ? AND valid_to IS NULL AND NOT ({same})",
            (seq, at, *values, sub_id, *values),
        )
        if cursor.rowcount == 1:
            cursor.execute(
                f"UPDATE {self.states} SET valid_to = ? WHERE subscription_id = ? AND valid_to IS NULL AND seq < ?",
                (at, sub_id, seq),
            )

    # ------------------------------------------------------------ reading (rows for projections/analytics_metrics.py)
    def payments_between(self, view_db: ViewDatabase, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
        s, e = to_utc_text(start), to_utc_text(end)
        with view_db.transaction(readonly=True) as cursor:
            return {
                "succeeded": cursor.execute(
                    f"SELECT plan_id, amount FROM {self.payments} WHERE succeeded_at >= ? AND succeeded_at < ?", (s, e)
                ).fetchall(),
                "failed": cursor.execute(
                    f"SELECT COUNT(*) AS n FROM {self.payments} WHERE failed_at >= ? AND failed_at < ?", (s, e)
                ).fetchall(),
                "refunds": cursor.execute(
                    f"SELECT plan_id, amount FROM {self.refunds} WHERE refunded_at >= ? AND refunded_at < ?", (s, e)
                ).fetchall(),
            }

    def states_at(self, view_db: ViewDatabase, moment: datetime) -> list[dict[str, Any]]:
        """Every subscription's state at `moment`."""
        t = to_utc_text(moment)
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT user_id, status, cycle, list_price, price FROM {self.states}"
                " WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
                (t, t),
            ).fetchall()

    def transitions_between(self, view_db: ViewDatabase, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """State rows that began in [start, end): new subscriptions and every change."""
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT * FROM {self.states} WHERE valid_from >= ? AND valid_from < ? ORDER BY valid_from, seq",
                (to_utc_text(start), to_utc_text(end)),
            ).fetchall()

    def trials_ending_between(self, view_db: ViewDatabase, start: datetime, end: datetime) -> list[dict[str, Any]]:
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT trial_ends_at, converted_at FROM {self.trials} WHERE trial_ends_at >= ? AND trial_ends_at < ?",
                (to_utc_text(start), to_utc_text(end)),
            ).fetchall()

    def cohort_rows(self, view_db: ViewDatabase, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Users who signed up in [start, end), with each of their state intervals."""
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT g.user_id, g.signed_up_at, s.status, s.list_price, s.valid_from, s.valid_to"
                f" FROM {self.signups} g LEFT JOIN {self.states} s ON s.user_id = g.user_id"
                " WHERE g.signed_up_at >= ? AND g.signed_up_at < ?",
                (to_utc_text(start), to_utc_text(end)),
            ).fetchall()

    def user_rows(self, view_db: ViewDatabase, user_id: str) -> dict[str, Any]:
        with view_db.transaction(readonly=True) as cursor:
            paid = cursor.execute(
                f"SELECT COALESCE(SUM(amount), 0) AS n FROM {self.payments} WHERE user_id = ? AND succeeded_at IS NOT NULL",
                (user_id,),
            ).fetchone()["n"]
            refunded = cursor.execute(
                f"SELECT COALESCE(SUM(amount), 0) AS n FROM {self.refunds} WHERE user_id = ?", (user_id,)
            ).fetchone()["n"]
            states = cursor.execute(
                f"SELECT status, list_price, valid_from, valid_to FROM {self.states} WHERE user_id = ?", (user_id,)
            ).fetchall()
        return {"revenue": int(paid) - int(refunded), "states": states}


QUERIES = ("payments_between", "states_at", "transitions_between", "trials_ending_between", "cohort_rows", "user_rows")


_PAYMENT_COLUMNS = ("payment_id", "user_id", "plan_id", "kind", "amount", "requested_at", "succeeded_at", "failed_at")
_REFUND_COLUMNS = ("payment_id", "seq", "user_id", "plan_id", "amount", "refunded_at")
_USER, _PLAN, _SUCCEEDED, _FAILED = (_PAYMENT_COLUMNS.index(c) for c in ("user_id", "plan_id", "succeeded_at", "failed_at"))


class _PaymentWrites:
    """One batch's payment rows: those requested in the batch are completed in memory
    and inserted whole; older ones get one executemany per kind of change."""

    def __init__(self) -> None:
        self.new: dict[str, list[Any]] = {}
        self.succeeded: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.new_refunds: list[tuple[Any, ...]] = []
        self.old_refunds: list[tuple[Any, ...]] = []

    def add(self, seq: int, event: Any) -> None:
        pay_id, at = str(event.originator_id), to_utc_text(event.at)
        row = self.new.get(pay_id)
        if isinstance(event, Payment.Requested):
            plan = POINTS_PLAN if event.kind == "POINTS" else event.purpose.get("plan_id")
            self.new[pay_id] = [pay_id, event.user_id, plan, event.kind, event.amount, at, None, None]
        elif isinstance(event, (Payment.Succeeded, Payment.Failed)):
            column, old = (_SUCCEEDED, self.succeeded) if isinstance(event, Payment.Succeeded) else (_FAILED, self.failed)
            if row is not None:
                row[column] = at
            else:
                old[pay_id] = at
        elif isinstance(event, Payment.Refunded):
            if row is not None:
                self.new_refunds.append((pay_id, seq, row[_USER], row[_PLAN], event.amount, at))
            else:
                self.old_refunds.append((seq, event.amount, at, pay_id))

    def flush(self, cursor: ViewCursor, tables: AnalyticsProjection) -> None:
        p = tables.payments
        cursor.insert_rows(p, _PAYMENT_COLUMNS, list(self.new.values()))
        cursor.executemany(f"UPDATE {p} SET succeeded_at = ? WHERE payment_id = ?", [(a, i) for i, a in self.succeeded.items()])
        cursor.executemany(f"UPDATE {p} SET failed_at = ? WHERE payment_id = ?", [(a, i) for i, a in self.failed.items()])
        cursor.insert_rows(tables.refunds, _REFUND_COLUMNS, self.new_refunds)
        cursor.executemany(
            f"INSERT INTO {tables.refunds} (payment_id, seq, user_id, plan_id, amount, refunded_at)"
            f" SELECT payment_id, ?, user_id, plan_id, ?, ? FROM {p} WHERE payment_id = ?",
            self.old_refunds,
        )
