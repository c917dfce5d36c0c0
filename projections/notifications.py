"""The notifications outbox (SPEC §7): a projection of the ledger.

Each notification comes from one ledger event and takes an id derived from that
event and its kind, so replaying the log (or running a reminder job twice, which
records nothing the second time) never adds a notification twice. Reminders are
ledger events too (`Subscription.Reminded`), recorded by the 09:00 run.

Deliveries live in their own table, outside the projection's prefix: a rebuild of
the outbox from position 0 finds the notifications already sent and does not
send them again (`projections/notification_deliveries.py` keeps where each one
stands, `workers/notifications.py` sends them).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.errors import InvalidInput
from domain.ids import NAMESPACE, uuid5_text
from domain.payments.payment import Payment
from domain.renewal_commands import PERIOD
from domain.subscription import SUSPENDED, Subscription
from domain.wallet import Wallet
from projections import notification_deliveries as deliveries
from projections.database import ViewCursor, ViewDatabase
from projections.event_filter import EventFilter
from projections.keyset import Keyset, Page, page_of, scope_of
from projections.notification_texts import render
from projections.runner import Tracked
from projections.wallet_history import to_utc_text

MAX_PAGE = 500
#: `notificationsPage` cursors: newest first by position, then id (one event can notify twice).
CURSORS = Keyset("notifications", ("position", "id"))


def notification_id(event: Any, kind: str) -> str:
    return uuid5_text(NAMESPACE, f"notification:{event.originator_id}:{event.originator_version}:{kind}")


#: Event classes the outbox words or learns from: every subscription and payment event, a
#: wallet's opening, expiry warnings and credits (rewards). Anything else, spends first,
#: is dropped before the batch looks at it.
_CONCERNS = EventFilter(Subscription.Event, Payment.Event, Wallet.Opened, Wallet.ExpiryWarned, Wallet.Credited)


def _iso(moment: datetime | None) -> str | None:
    return to_utc_text(moment) if moment is not None else None


class NotificationsProjection:
    name = "notifications"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.tracking_name = f"{prefix}{self.name}"
        self.table = f"{prefix}notifications"
        self.payments = f"{prefix}notification_payments"
        self.owners = f"{prefix}notification_owners"

    def create_tables(self, cursor: ViewCursor) -> None:
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {self.table} (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
            " kind TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, data TEXT NOT NULL,"
            " created_at TEXT NOT NULL, seq BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.table}_user ON {self.table} (user_id, seq)",
            f"CREATE INDEX IF NOT EXISTS {self.table}_seq ON {self.table} (seq)",
            # What the outbox needs to word later events that carry only an id.
            f"CREATE TABLE IF NOT EXISTS {self.payments} (payment_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
            " amount BIGINT NOT NULL, purpose TEXT, order_name TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.owners} (aggregate_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
            " plan_id TEXT)",
        ):
            cursor.execute(statement)
        deliveries.create_table(cursor)

    # ------------------------------------------------------------ writing
    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        """One batch in a handful of statements: the owners and payments the batch
        refers to are read at once, new rows go in with `insert_rows` (COPY on
        PostgreSQL) and plan changes with one executemany, at the end."""
        events = _CONCERNS.keep(events)
        batch = _Batch(self, cursor, events)
        for seq, event in events:
            if isinstance(event, Subscription.Event):
                self._subscription(batch, seq, event)
            elif isinstance(event, Payment.Event):
                self._payment(batch, seq, event)
            elif isinstance(event, Wallet.Opened):
                batch.own(event, event.user_id, None)
            elif isinstance(event, Wallet.ExpiryWarned):
                data = {"points": event.amount, "expiresAt": _iso(event.expires_at)}
                batch.add(seq, event, batch.owner(event)[0], "POINTS_EXPIRING", data)
            elif isinstance(event, Wallet.Credited) and event.type == "REWARD":
                data = {"points": event.amount, "activity": event.reference_id, "expiresAt": _iso(event.expires_at)}
                batch.add(seq, event, batch.owner(event)[0], "POINTS_REWARDED", data)
        batch.flush()

    def _subscription(self, batch: _Batch, seq: int, event: Any) -> None:
        if isinstance(event, Subscription.Subscribed):
            batch.own(event, event.user_id, event.plan_id)
            data = {"subscriptionId": str(event.originator_id), "planId": event.plan_id, "status": event.status,
                    "trialEndsAt": _iso(event.trial_ends_at), "price": event.price}
            batch.add(seq, event, event.user_id, "WELCOME", data)
            return
        user_id, plan_id = batch.owner(event)
        base = {"subscriptionId": str(event.originator_id), "planId": plan_id}
        if isinstance(event, (Subscription.PeriodPaid, Subscription.PlanChanged)):
            batch.set_plan(event, event.plan_id)
        elif isinstance(event, Subscription.ChargeFailed) and _is_period_charge(batch.payment(event.payment_id), event.payment_id):
            payment = batch.payment(event.payment_id)
            amount = payment["amount"] if payment else None
            retry = event.next_charge_at if event.counted and event.status != SUSPENDED else None
            data = {**base, "paymentId": event.payment_id, "amount": amount, "declineCode": event.decline_code,
                    "attempt": event.consecutive_failures, "retryAt": _iso(retry)}
            batch.add(seq, event, user_id, "PAYMENT_FAILED", data)
            if event.counted and event.status == SUSPENDED:
                batch.add(seq, event, user_id, "SUBSCRIPTION_SUSPENDED", {**base, "failures": event.consecutive_failures})
        elif isinstance(event, Subscription.Canceled):
            batch.add(seq, event, user_id, "SUBSCRIPTION_CANCELED", {**base, "refunded": event.refunded, "reason": event.reason})
        elif isinstance(event, Subscription.UsageRecorded) and event.warning:
            data = {**base, "service": event.service, "used": event.used_after, "limit": event.limit,
                    "resetsAt": _iso(event.window_end)}
            batch.add(seq, event, user_id, "USAGE_WARNING", data)
        elif isinstance(event, Subscription.Reminded):
            data = {**base, "daysBefore": event.days_before, "at": _iso(event.due_at), "amount": event.amount}
            batch.add(seq, event, user_id, event.kind, data)

    def _payment(self, batch: _Batch, seq: int, event: Any) -> None:
        pay_id = str(event.originator_id)
        if isinstance(event, Payment.Requested):
            batch.new_payment(pay_id, event.user_id, event.amount, (event.purpose or {}).get("type"), event.order_name)
            return
        row = batch.payment(pay_id)
        if row is None:
            return
        data = {"paymentId": pay_id, "amount": row["amount"], "orderName": row["order_name"]}
        if isinstance(event, Payment.Succeeded):
            batch.add(seq, event, row["user_id"], "PAYMENT_SUCCEEDED", data)
        elif isinstance(event, Payment.Failed) and row["purpose"] != PERIOD:
            # Failed subscription periods are told by the subscription, which knows the retry date.
            batch.add(seq, event, row["user_id"], "PAYMENT_FAILED", {**data, "declineCode": event.failure_code, "retryAt": None})

    # ------------------------------------------------------------ reading
    def recent(self, view_db: ViewDatabase, user_id: str, first: int = 50) -> list[dict[str, Any]]:
        """The user's notifications, newest first."""
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first!r}")
        return self._select(view_db, "n.user_id = ? ORDER BY n.seq DESC, n.id LIMIT ?", (user_id, first))

    def page(self, view_db: ViewDatabase, user_id: str, first: int, after: str | None = None) -> Page[dict[str, Any]]:
        """A page of the user's notifications in `recent`'s order (seq DESC, id), after the cursor `after`."""
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first!r}")
        scope = scope_of(user_id)
        where, params = "n.user_id = ?", [user_id]
        if after is not None:
            seq, last_id = CURSORS.decode(after, scope)
            where, params = where + " AND (n.seq < ? OR (n.seq = ? AND n.id > ?))", [*params, seq, seq, last_id]
        rows = self._select(view_db, f"{where} ORDER BY n.seq DESC, n.id LIMIT ?", [*params, first + 1])
        return page_of(rows, first, lambda row: CURSORS.encode(scope, row["seq"], row["id"]))

    def one(self, view_db: ViewDatabase, notification_id: str) -> dict[str, Any] | None:
        """One notification by id, with its delivery, or None."""
        rows = self._select(view_db, "n.id = ?", (notification_id,))
        return rows[0] if rows else None

    def unsent(self, view_db: ViewDatabase, limit: int = 200) -> list[dict[str, Any]]:
        """Notifications no sender has touched yet (PENDING), oldest first."""
        return self._select(view_db, "d.id IS NULL ORDER BY n.seq, n.id LIMIT ?", (limit,))

    def retry_due(self, view_db: ViewDatabase, wall: datetime, limit: int = 200) -> list[dict[str, Any]]:
        """RETRYING notifications whose next attempt is due by the wall clock `wall`, oldest first."""
        return self._select(
            view_db, "d.state = ? AND d.next_attempt_at <= ? ORDER BY n.seq, n.id LIMIT ?",
            (deliveries.DeliveryState.RETRYING.value, to_utc_text(wall), limit),
        )

    def _select(self, view_db: ViewDatabase, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT n.id, n.user_id, n.kind, n.subject, n.body, n.data, n.created_at, n.seq, {deliveries.columns('d')}"
                f" FROM {self.table} n LEFT JOIN {deliveries.SENDS} d ON d.id = n.id WHERE {where}",
                params,
            ).fetchall()
        return [
            {**row, "data": json.loads(row["data"]), "created_at": datetime.fromisoformat(row["created_at"]),
             **deliveries.delivery_fields(row)}
            for row in rows
        ]


QUERIES = ("recent", "page", "one", "unsent", "retry_due")


def _is_period_charge(payment: dict[str, Any] | None, pay_id: str | None) -> bool:
    if pay_id is None:  # an attempt not sent (hard decline, no method) is still a failed renewal
        return True
    return payment is not None and payment["purpose"] == PERIOD


def _needs_owner(event: Any) -> bool:
    if isinstance(event, Subscription.Event):
        return not isinstance(event, Subscription.Subscribed)
    return isinstance(event, Wallet.ExpiryWarned) or (isinstance(event, Wallet.Credited) and event.type == "REWARD")


def _payment_ref(event: Any) -> str | None:
    """The payment whose row the outbox needs to word `event`, if any."""
    if isinstance(event, Payment.Event) and not isinstance(event, Payment.Requested):
        return str(event.originator_id)
    if isinstance(event, Subscription.ChargeFailed):
        return event.payment_id
    return None


class _Batch:
    """The outbox's writes for one batch, kept in memory until `flush`; lookups see
    the rows this batch added as well as those already in the tables."""

    def __init__(self, projection: NotificationsProjection, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        self.p = projection
        self.cursor = cursor
        self.rows: list[tuple[Any, ...]] = []
        self.new_owners: dict[str, list[Any]] = {}
        self.plan_updates: dict[str, str | None] = {}
        self.new_payments: list[tuple[Any, ...]] = []
        owner_ids = list(dict.fromkeys(str(e.originator_id) for _, e in events if _needs_owner(e)))
        pay_ids = list(dict.fromkeys(ref for _, e in events if (ref := _payment_ref(e)) is not None))
        self.owners: dict[str, list[Any]] = {
            key: [row["user_id"], row["plan_id"]] for key, row in cursor.rows_by_key(projection.owners, "aggregate_id", owner_ids).items()
        }
        self.payments = cursor.rows_by_key(projection.payments, "payment_id", pay_ids)

    def own(self, event: Any, user_id: str, plan_id: str | None) -> None:
        key = str(event.originator_id)
        if key in self.owners:
            raise LookupError(f"aggregate {key} was created twice")
        self.owners[key] = self.new_owners[key] = [user_id, plan_id]

    def owner(self, event: Any) -> tuple[str, str | None]:
        found = self.owners.get(str(event.originator_id))
        if found is None:
            raise LookupError(f"aggregate {event.originator_id} has events but no creation event before them")
        return found[0], found[1]

    def set_plan(self, event: Any, plan_id: str) -> None:
        key = str(event.originator_id)
        self.owners[key][1] = plan_id  # the same list as in new_owners when created in this batch
        if key not in self.new_owners:
            self.plan_updates[key] = plan_id

    def new_payment(self, pay_id: str, user_id: str, amount: int, purpose: str | None, order_name: str) -> None:
        if pay_id in self.payments:
            raise LookupError(f"payment {pay_id} was requested twice")
        self.payments[pay_id] = {"payment_id": pay_id, "user_id": user_id, "amount": amount, "purpose": purpose, "order_name": order_name}
        self.new_payments.append((pay_id, user_id, amount, purpose, order_name))

    def payment(self, pay_id: str | None) -> dict[str, Any] | None:
        return self.payments.get(pay_id) if pay_id is not None else None

    def add(self, seq: int, event: Any, user_id: str, kind: str, data: dict[str, Any]) -> None:
        subject, body = render(kind, data)
        self.rows.append((notification_id(event, kind), user_id, kind, subject, body, json.dumps(data, sort_keys=True),
                          to_utc_text(event.at), seq))

    def flush(self) -> None:
        p, cursor = self.p, self.cursor
        cursor.insert_rows(p.owners, ("aggregate_id", "user_id", "plan_id"), [(k, *v) for k, v in self.new_owners.items()])
        cursor.executemany(f"UPDATE {p.owners} SET plan_id = ? WHERE aggregate_id = ?", [(v, k) for k, v in self.plan_updates.items()])
        cursor.insert_rows(p.payments, ("payment_id", "user_id", "amount", "purpose", "order_name"), self.new_payments)
        cursor.insert_rows(p.table, ("id", "user_id", "kind", "subject", "body", "data", "created_at", "seq"), self.rows)
