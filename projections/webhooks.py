"""Webhook events (docs/webhooks.md): a projection of the ledger, like the notifications outbox.

Each event comes from one ledger event and takes an id derived from it
(`evt_` + a UUID of the originator id, its version and the event type), so a
rebuild from position 0 writes the very same ids, and a receiver that
deduplicates by id never sees one event twice as two. `seq` is the ledger
position: events are fanned out to endpoints in that order.

Which endpoints get which event, and what was sent, live outside this
projection's tables (projections/webhook_deliveries.py): a rebuild does not
send anything again.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from domain.ids import NAMESPACE, uuid5_text
from domain.payments.payment import Payment
from domain.subscription import Subscription
from domain.wallet import Wallet
from domain.webhooks import WebhookEventType as T
from projections.database import ViewCursor, ViewDatabase
from projections.event_filter import EventFilter
from projections.notifications import _iso
from projections.runner import Tracked
from projections.wallet_history import to_utc_text

PAYMENT_COLUMNS = ("payment_id", "user_id", "amount", "kind", "order_id", "order_name", "subscription_id", "provider")
SUBJECT_COLUMNS = ("aggregate_id", "user_id", "plan_id", "status")


def event_id(event: Any, kind: T) -> str:
    name = f"webhook:{event.originator_id}:{event.originator_version}:{kind.value}"
    return "evt_" + uuid5_text(NAMESPACE, name).replace("-", "")  # uuid5(...).hex


#: Event classes the webhook events come from or need: payments, subscriptions, a wallet's
#: opening (its owner), credits (purchases) and expiries. Spends are dropped first.
_CONCERNS = EventFilter(Payment.Event, Subscription.Event, Wallet.Opened, Wallet.Credited, Wallet.Expired)


class WebhookEventsProjection:
    name = "webhook_events"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.tracking_name = f"{prefix}{self.name}"
        self.table = f"{prefix}webhook_events"
        self.payments = f"{prefix}webhook_payments"
        self.subjects = f"{prefix}webhook_subjects"

    def create_tables(self, cursor: ViewCursor) -> None:
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {self.table} (id TEXT PRIMARY KEY, type TEXT NOT NULL, data TEXT NOT NULL,"
            " created_at TEXT NOT NULL, seq BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.table}_seq ON {self.table} (seq)",
            # What later events that carry only an id need: the payment's details, the aggregate's owner.
            f"CREATE TABLE IF NOT EXISTS {self.payments} (payment_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
            " amount BIGINT NOT NULL, kind TEXT, order_id TEXT NOT NULL, order_name TEXT NOT NULL,"
            " subscription_id TEXT, provider TEXT)",
            f"CREATE TABLE IF NOT EXISTS {self.subjects} (aggregate_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
            " plan_id TEXT, status TEXT)",
        ):
            cursor.execute(statement)

    # ------------------------------------------------------------ writing
    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        events = _CONCERNS.keep(events)
        batch = _Batch(self, cursor, events)
        for seq, event in events:
            if isinstance(event, Payment.Event):
                self._payment(batch, seq, event)
            elif isinstance(event, Subscription.Event):
                self._subscription(batch, seq, event)
            elif isinstance(event, Wallet.Opened):
                batch.subjects[str(event.originator_id)] = {"user_id": event.user_id, "plan_id": None, "status": None}
                batch.new_subjects.add(str(event.originator_id))
            elif isinstance(event, Wallet.Credited) and event.type == "PURCHASE":
                data = {"userId": batch.subject(event)["user_id"], "points": event.amount, "paymentId": event.reference_id,
                        "lotId": event.lot_id, "balanceAfter": event.balance_after, "expiresAt": _iso(event.expires_at)}
                batch.add(seq, event, T.POINTS_PURCHASED, data)
            elif isinstance(event, Wallet.Expired):
                data = {"userId": batch.subject(event)["user_id"], "points": event.amount, "lotId": event.lot_id,
                        "balanceAfter": event.balance_after, "expiredAt": _iso(event.expires_at)}
                batch.add(seq, event, T.POINTS_EXPIRED, data)
        batch.flush()

    def _payment(self, batch: _Batch, seq: int, event: Any) -> None:
        pay_id = str(event.originator_id)
        if isinstance(event, Payment.Requested):
            row = dict(zip(PAYMENT_COLUMNS, (pay_id, event.user_id, event.amount, event.kind, event.order_id,
                                             event.order_name, event.subscription_id, event.provider)))
            batch.payments[pay_id] = row
            batch.new_payments.append(row)
            return
        row = batch.payments.get(pay_id)
        if row is None:
            return
        data = {"paymentId": pay_id, "userId": row["user_id"], "amount": row["amount"], "kind": row["kind"],
                "orderId": row["order_id"], "orderName": row["order_name"], "subscriptionId": row["subscription_id"],
                "provider": row["provider"]}
        if isinstance(event, Payment.Succeeded):
            batch.add(seq, event, T.PAYMENT_SUCCEEDED, {**data, "paidAt": _iso(event.paid_at)})
        elif isinstance(event, Payment.Failed):
            batch.add(seq, event, T.PAYMENT_FAILED, {**data, "declineCode": event.failure_code})
        elif isinstance(event, Payment.Refunded):
            refund = {"refundId": event.refund_id, "paymentId": pay_id, "userId": row["user_id"], "amount": event.amount,
                      "paymentAmount": row["amount"], "reason": event.reason}
            batch.add(seq, event, T.REFUND_SUCCEEDED, refund)
        elif isinstance(event, Payment.RefundFailed):
            refund = {"refundId": event.refund_id, "paymentId": pay_id, "userId": row["user_id"],
                      "declineCode": event.code, "reason": None}
            batch.add(seq, event, T.REFUND_FAILED, refund)

    def _subscription(self, batch: _Batch, seq: int, event: Any) -> None:
        key = str(event.originator_id)
        if isinstance(event, Subscription.Subscribed):
            batch.subjects[key] = {"user_id": event.user_id, "plan_id": event.plan_id, "status": event.status}
            batch.new_subjects.add(key)
            data = {"subscriptionId": key, "userId": event.user_id, "planId": event.plan_id, "status": event.status,
                    "price": event.price, "trialEndsAt": _iso(event.trial_ends_at)}
            batch.add(seq, event, T.SUBSCRIPTION_CREATED, data)
            return
        subject = batch.subject(event)
        base = {"subscriptionId": key, "userId": subject["user_id"]}
        if isinstance(event, Subscription.PlanChanged) or (
            isinstance(event, Subscription.PeriodPaid) and event.plan_id != subject["plan_id"]
        ):
            # Now (an upgrade) or at the period's end (a downgrade applied by the renewal).
            data = {**base, "previousPlanId": subject["plan_id"], "planId": event.plan_id, "price": event.price}
            batch.add(seq, event, T.SUBSCRIPTION_PLAN_CHANGED, data)
            batch.update(key, plan_id=event.plan_id)
        status = getattr(event, "status", None)
        if isinstance(status, str) and status != subject["status"]:
            data = {**base, "planId": subject["plan_id"], "previousStatus": subject["status"], "status": status}
            batch.add(seq, event, T.SUBSCRIPTION_STATUS_CHANGED, data)
            batch.update(key, status=status)

    # ------------------------------------------------------------ reading
    def after(self, view_db: ViewDatabase, seq: int, limit: int) -> list[dict[str, Any]]:
        """Events after ledger position `seq`, in log order."""
        with view_db.transaction(readonly=True) as cursor:
            return cursor.execute(
                f"SELECT id, type, data, created_at, seq FROM {self.table} WHERE seq > ? ORDER BY seq, id LIMIT ?",
                (seq, limit),
            ).fetchall()


QUERIES = ("after",)


def payload(row: dict[str, Any]) -> bytes:
    """The body sent for an event row: id, type, created_at, data (compact, keys sorted)."""
    body = {"id": row["id"], "type": row["type"], "created_at": row["created_at"], "data": json.loads(row["data"])}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _needs_subject(event: Any) -> bool:
    if isinstance(event, Wallet.Event):
        return isinstance(event, Wallet.Expired) or (isinstance(event, Wallet.Credited) and event.type == "PURCHASE")
    return isinstance(event, Subscription.Event)


class _Batch:
    """One batch's writes, in memory until `flush`; lookups see rows added by the batch itself."""

    def __init__(self, projection: WebhookEventsProjection, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        self.p = projection
        self.cursor = cursor
        self.rows: list[tuple[Any, ...]] = []
        self.new_payments: list[dict[str, Any]] = []
        self.new_subjects: set[str] = set()
        self.changed: set[str] = set()
        pay_ids = list(dict.fromkeys(str(e.originator_id) for _, e in events if isinstance(e, Payment.Event)))
        # Only the subjects `apply` looks up: most wallet events (spends, rewards) publish nothing.
        subject_ids = list(dict.fromkeys(str(e.originator_id) for _, e in events if _needs_subject(e)))
        self.payments = cursor.rows_by_key(projection.payments, "payment_id", pay_ids)
        self.subjects: dict[str, dict[str, Any]] = {
            key: dict(row) for key, row in cursor.rows_by_key(projection.subjects, "aggregate_id", subject_ids).items()
        }

    def subject(self, event: Any) -> dict[str, Any]:
        found = self.subjects.get(str(event.originator_id))
        if found is None:
            raise LookupError(f"aggregate {event.originator_id} has events but no creation event before them")
        return found

    def update(self, key: str, **values: Any) -> None:
        self.subjects[key].update(values)
        if key not in self.new_subjects:
            self.changed.add(key)

    def add(self, seq: int, event: Any, kind: T, data: dict[str, Any]) -> None:
        self.rows.append((event_id(event, kind), kind.value, json.dumps(data, sort_keys=True), to_utc_text(event.at), seq))

    def flush(self) -> None:
        p, cursor = self.p, self.cursor
        cursor.insert_rows(p.payments, PAYMENT_COLUMNS, [tuple(r[c] for c in PAYMENT_COLUMNS) for r in self.new_payments])
        cursor.insert_rows(p.subjects, SUBJECT_COLUMNS, [
            (key, *(self.subjects[key][c] for c in SUBJECT_COLUMNS[1:])) for key in sorted(self.new_subjects)
        ])
        cursor.executemany(
            f"UPDATE {p.subjects} SET plan_id = ?, status = ? WHERE aggregate_id = ?",
            [(self.subjects[k]["plan_id"], self.subjects[k]["status"], k) for k in sorted(self.changed)],
        )
        cursor.insert_rows(p.table, ("id", "type", "data", "created_at", "seq"), self.rows)
