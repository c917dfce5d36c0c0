"""Webhook deliveries and their attempts (docs/webhooks.md): the outbox of each endpoint.

Fan-out: an endpoint's `position` is the ledger position up to which webhook
events were considered for it; moving it (compare-and-set) and inserting the
deliveries it yields happen in one transaction, and a delivery's id is derived
from the event and the endpoint, so two processes fanning out at once add each
delivery once. The body is stored with the delivery: a redelivery sends the
very bytes (and event id) the first attempt sent.

Claiming: a worker takes a due delivery by writing its name and a lease (wall
clock) on the row, only where no live lease is; another worker skips it until
the lease ends. Sending is at least once: a worker that dies after the
endpoint answered and before recording it leaves a lease that ends, and the
delivery is sent again (receivers deduplicate by event id).

Times of the retry schedule are the service clock's (the test clock in tests);
leases are wall-clock milliseconds, since they guard against real processes.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import uuid5

from domain.errors import Conflict, NotFound
from domain.ids import NAMESPACE
from domain.webhooks import DeliveryStatus
from projections.database import ViewDatabase
from projections.keyset import Keyset, Page, page_of, scope_of
from projections.wallet_history import to_utc_text
from projections.webhooks import payload

ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"
ATTEMPTS = "webhook_attempts"
DDL = (
    f"CREATE TABLE IF NOT EXISTS {DELIVERIES} (id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " next_attempt_ms BIGINT, window_start_ms BIGINT NOT NULL, lease_owner TEXT, lease_until_ms BIGINT,"
    " created_at TEXT NOT NULL, seq BIGINT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {DELIVERIES}_due ON {DELIVERIES} (status, next_attempt_ms)",
    f"CREATE INDEX IF NOT EXISTS {DELIVERIES}_endpoint ON {DELIVERIES} (endpoint_id, seq)",
    f"CREATE TABLE IF NOT EXISTS {ATTEMPTS} (delivery_id TEXT NOT NULL, number INTEGER NOT NULL, at TEXT NOT NULL,"
    " response_code INTEGER, error TEXT, duration_ms INTEGER NOT NULL, PRIMARY KEY (delivery_id, number))",
)
FIELDS = ("id, endpoint_id, event_id, event_type, body, status, attempts, next_attempt_ms, window_start_ms,"
          " lease_until_ms, created_at, seq")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_millis(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc) if value is not None else None


def delivery_id(event_id: str, endpoint_id: str) -> str:
    return "wd_" + uuid5(NAMESPACE, f"webhook-delivery:{endpoint_id}:{event_id}").hex


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    response_code: int | None
    error: str | None
    duration_ms: int


#: `webhookDeliveriesPage` cursors: newest first by position, then id (one event goes to several endpoints).
CURSORS = Keyset("webhookDeliveries", ("position", "token"))


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    window_start: datetime
    created_at: datetime
    history: tuple[Attempt, ...] = ()
    seq: int = 0  # the ledger position of its event: the list's order


def _delivery(row: dict[str, Any], history: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        id=row["id"], endpoint_id=row["endpoint_id"], event_id=row["event_id"], event_type=row["event_type"],
        body=row["body"], status=DeliveryStatus(row["status"]), attempts=int(row["attempts"]),
        next_attempt_at=from_millis(row["next_attempt_ms"]), window_start=from_millis(row["window_start_ms"]),
        created_at=datetime.fromisoformat(row["created_at"]), history=tuple(history), seq=int(row["seq"]),
    )


class WebhookDeliveries:
    def __init__(self, view_db: ViewDatabase, *, create: bool = True) -> None:
        self.view_db = view_db
        if not create:  # `subledger migrate` made them (projections/versions.py)
            return
        with view_db.transaction() as cursor:
            for statement in DDL:
                cursor.execute(statement)

    # ------------------------------------------------------------ fan-out
    def fan_out(self, endpoint: Any, events: Sequence[dict[str, Any]], now: datetime) -> int:
        """Deliveries for `events` (those after the endpoint's position, in order) that the
        endpoint wants, and its position moved past them; 0 when another process moved it first."""
        if not events:
            return 0
        rows = [
            (delivery_id(e["id"], endpoint.id), endpoint.id, e["id"], e["type"], payload(e).decode("utf-8"),
             DeliveryStatus.PENDING.value, 0, millis(now), millis(now), to_utc_text(now), e["seq"])
            for e in events if endpoint.wants(e["type"])
        ]
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {ENDPOINTS} SET position = ? WHERE id = ? AND position = ?",
                (events[-1]["seq"], endpoint.id, endpoint.position),
            )
            if cursor.rowcount != 1:
                return 0
            cursor.executemany(
                f"INSERT INTO {DELIVERIES} (id, endpoint_id, event_id, event_type, body, status, attempts,"
                " next_attempt_ms, window_start_ms, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                rows,
            )
        return len(rows)

    # ------------------------------------------------------------ sending
    def claim_due(self, now: datetime, owner: str, wall_ms: int, lease_ms: int, limit: int) -> list[Delivery]:
        """Due PENDING deliveries nobody holds, each leased to `owner` until `wall_ms + lease_ms`."""
        with self.view_db.transaction(readonly=True) as cursor:
            candidates = cursor.execute(
                f"SELECT id FROM {DELIVERIES} WHERE status = ? AND next_attempt_ms <= ?"
                " AND (lease_until_ms IS NULL OR lease_until_ms < ?)"
                f" AND endpoint_id IN (SELECT id FROM {ENDPOINTS} WHERE enabled = 1)"  # a disabled one waits
                " ORDER BY next_attempt_ms, seq LIMIT ?",
                (DeliveryStatus.PENDING.value, millis(now), wall_ms, limit),
            ).fetchall()
        claimed = []
        with self.view_db.transaction() as cursor:
            for row in candidates:
                # Re-checked under the row's lock: a worker that claimed it meanwhile wins.
                cursor.execute(
                    f"UPDATE {DELIVERIES} SET lease_owner = ?, lease_until_ms = ? WHERE id = ? AND status = ?"
                    " AND (lease_until_ms IS NULL OR lease_until_ms < ?)",
                    (owner, wall_ms + lease_ms, row["id"], DeliveryStatus.PENDING.value, wall_ms),
                )
                if cursor.rowcount == 1:
                    claimed.append(row["id"])
            found = cursor.execute(
                f"SELECT {FIELDS} FROM {DELIVERIES} WHERE id IN ({', '.join('?' * len(claimed))})", claimed
            ).fetchall() if claimed else []
        return sorted((_delivery(r) for r in found), key=lambda d: (d.next_attempt_at, d.id))

    def record(self, delivery: Delivery, owner: str, attempt: Attempt, status: DeliveryStatus,
               next_attempt_at: datetime | None) -> bool:
        """Record an attempt and the delivery's new state, and let go of the lease; False when
        the lease was lost (the endpoint was deleted, or the delivery redelivered meanwhile)."""
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {DELIVERIES} SET status = ?, attempts = ?, next_attempt_ms = ?, lease_owner = NULL,"
                " lease_until_ms = NULL WHERE id = ? AND lease_owner = ?",
                (status.value, attempt.number, millis(next_attempt_at) if next_attempt_at else None, delivery.id, owner),
            )
            if cursor.rowcount != 1:
                return False
            cursor.execute(
                f"INSERT INTO {ATTEMPTS} (delivery_id, number, at, response_code, error, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, number) DO NOTHING",
                (delivery.id, attempt.number, to_utc_text(attempt.at), attempt.response_code, attempt.error,
                 attempt.duration_ms),
            )
        return True

    def redeliver(self, delivery_id: str, now: datetime, wall_ms: int) -> Delivery:
        """Send it again as soon as a worker passes, with a fresh retry window; the same body
        and event id. CONFLICT while an attempt is in flight."""
        with self.view_db.transaction() as cursor:
            row = cursor.execute(f"SELECT lease_until_ms FROM {DELIVERIES} WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"webhook delivery {delivery_id} not found")
            if row["lease_until_ms"] is not None and row["lease_until_ms"] >= wall_ms:
                raise Conflict(f"webhook delivery {delivery_id} is being sent right now; try again shortly")
            cursor.execute(
                f"UPDATE {DELIVERIES} SET status = ?, next_attempt_ms = ?, window_start_ms = ?, lease_owner = NULL,"
                " lease_until_ms = NULL WHERE id = ?",
                (DeliveryStatus.PENDING.value, millis(now), millis(now), delivery_id),
            )
        return self.get(delivery_id)

    # ------------------------------------------------------------ reading
    def get(self, delivery_id: str) -> Delivery:
        found = self._select("id = ?", (delivery_id,), 1)
        if not found:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        return found[0]

    def page(self, endpoint_id: str | None, event_id: str | None, status: DeliveryStatus | None,
             first: int) -> list[Delivery]:
        """Newest first (by ledger position), with their attempts."""
        where, params = _filters(endpoint_id, event_id, status)
        return self._select(where, params, first)

    def page_after(self, endpoint_id: str | None, event_id: str | None, status: DeliveryStatus | None,
                   first: int, after: str | None = None) -> Page[Delivery]:
        """`page`'s order (seq DESC, id) a page at a time, after the cursor `after` (projections/keyset.py)."""
        where, params = _filters(endpoint_id, event_id, status)
        scope = scope_of(endpoint_id, event_id, status.value if status else None)
        if after is not None:
            seq, last_id = CURSORS.decode(after, scope)
            where, params = where + " AND (seq < ? OR (seq = ? AND id > ?))", [*params, seq, seq, last_id]
        rows = self._select(where, params, first + 1)
        return page_of(rows, first, lambda delivery: CURSORS.encode(scope, delivery.seq, delivery.id))

    def _select(self, where: str, params: Sequence[Any], limit: int) -> list[Delivery]:
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT {FIELDS} FROM {DELIVERIES} WHERE {where} ORDER BY seq DESC, id LIMIT ?", (*params, limit)
            ).fetchall()
            ids = [r["id"] for r in rows]
            attempts = cursor.execute(
                f"SELECT delivery_id, number, at, response_code, error, duration_ms FROM {ATTEMPTS}"
                f" WHERE delivery_id IN ({', '.join('?' * len(ids))}) ORDER BY delivery_id, number", ids
            ).fetchall() if ids else []
        history: dict[str, list[Attempt]] = {}
        for a in attempts:
            history.setdefault(a["delivery_id"], []).append(Attempt(
                int(a["number"]), datetime.fromisoformat(a["at"]), a["response_code"], a["error"], int(a["duration_ms"])
            ))
        return [_delivery(r, history.get(r["id"], ())) for r in rows]


def _filters(endpoint_id: str | None, event_id: str | None, status: DeliveryStatus | None) -> tuple[str, list[Any]]:
    where, params = ["1 = 1"], []
    for column, value in (("endpoint_id", endpoint_id), ("event_id", event_id), ("status", status.value if status else None)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(where), params


def body_of(delivery: Delivery) -> bytes:
    return delivery.body.encode("utf-8")


def parsed(delivery: Delivery) -> dict[str, Any]:
    return json.loads(delivery.body)
