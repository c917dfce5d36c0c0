"""The payments read model: who paid what, newest first (the `payments` list query).

Single payments are read from the ledger (read-your-writes); this table only
answers "which payments does this user have", and keeps each one's status so
later read models (analytics) can count without loading aggregates.

`receipt_url` (the provider's receipt page, from `Payment.Succeeded`) came after
the table: `create_tables` adds the column to a table made before it
(`ViewCursor.add_column`), NULL in the old rows, which is what a rebuild would write
too (events stored before receipts were kept carry none). `audit verify` checks it.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput
from domain.payments.payment import Payment
from projections.database import ViewCursor, ViewDatabase
from projections.generations import LiveProjection
from projections.keyset import Keyset, Page, page_of, scope_of
from projections.runner import Tracked
from projections.wallet_history import to_utc_text

MAX_PAGE = 500
#: `paymentsPage` cursors: newest first by the position the payment was requested at.
CURSORS = Keyset("payments")


class PaymentsProjection:
    name = "payments"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    version = 1

    def __init__(self, prefix: str = "") -> None:
        self.table = f"{prefix}payments"
        #: One row per refund movement: the settle job finds the PENDING ones here.
        self.refunds = f"{prefix}payment_refunds"
        self.tracking_name = f"{prefix}{self.name}"

    def create_tables(self, cursor: ViewCursor) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " payment_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, order_id TEXT NOT NULL,"
            " kind TEXT NOT NULL, status TEXT NOT NULL, amount BIGINT NOT NULL, refunded_amount BIGINT NOT NULL,"
            " subscription_id TEXT, created_at TEXT NOT NULL, seq BIGINT NOT NULL, receipt_url TEXT)"
        )
        cursor.add_column(self.table, "receipt_url", "TEXT")
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_user_seq ON {self.table} (user_id, seq)")
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_status ON {self.table} (status, created_at)")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.refunds} ("
            " refund_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, status TEXT NOT NULL, amount BIGINT NOT NULL,"
            " requested_at TEXT NOT NULL)"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {self.refunds}_status ON {self.refunds} (status, requested_at)")

    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        """A batch in a few statements: payments requested in it are settled in memory
        and written with `insert_rows`; the others get one executemany per kind of change
        (a refund always follows the success it refunds, so statuses go first)."""
        new: dict[str, list[Any]] = {}
        statuses: dict[str, tuple[str, str | None]] = {}  # payment id -> (status, receipt URL)
        refunds: dict[str, int] = {}
        movements: dict[str, list[Any]] = {}  # refund id -> row, for refunds requested in this batch
        settled: dict[str, str] = {}  # refund id -> status, for refunds requested earlier
        for position, event in events:
            if not isinstance(event, Payment.Event):
                continue  # most of the log (wallet events): no id to format, no lookups
            payment_id = str(event.originator_id)
            row = new.get(payment_id)
            if isinstance(event, Payment.Requested):
                new[payment_id] = [payment_id, event.user_id, event.order_id, event.kind, "PENDING", event.amount, 0,
                                   event.subscription_id, to_utc_text(event.at), position, None]
            elif isinstance(event, (Payment.Succeeded, Payment.Failed)):
                succeeded = isinstance(event, Payment.Succeeded)
                settled_as = ("SUCCEEDED", event.receipt_url) if succeeded else ("FAILED", None)
                if row is not None:
                    row[_STATUS], row[_RECEIPT] = settled_as
                else:
                    statuses[payment_id] = settled_as
            elif isinstance(event, Payment.RefundRequested):
                movements[event.refund_id] = [event.refund_id, payment_id, "PENDING", event.amount, to_utc_text(event.at)]
            elif isinstance(event, Payment.RefundFailed):
                _settle_movement(movements, settled, event.refund_id, "FAILED")
            elif isinstance(event, Payment.Refunded):
                if event.refund_id is not None:
                    _settle_movement(movements, settled, event.refund_id, "SUCCEEDED")
                if row is not None:
                    row[_REFUNDED] += event.amount
                    row[_STATUS] = "REFUNDED" if row[_REFUNDED] >= row[_AMOUNT] else "PARTIALLY_REFUNDED"
                else:
                    refunds[payment_id] = refunds.get(payment_id, 0) + event.amount
        cursor.insert_rows(self.table, _COLUMNS, list(new.values()))
        cursor.executemany(
            f"UPDATE {self.table} SET status = ?, receipt_url = ? WHERE payment_id = ?",
            [(s, url, p) for p, (s, url) in statuses.items()],
        )
        cursor.executemany(
            f"UPDATE {self.table} SET refunded_amount = refunded_amount + ?,"
            " status = CASE WHEN refunded_amount + ? >= amount THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END"
            " WHERE payment_id = ?",
            [(amount, amount, p) for p, amount in refunds.items()],
        )
        cursor.insert_rows(self.refunds, ("refund_id", "payment_id", "status", "amount", "requested_at"), list(movements.values()))
        cursor.executemany(f"UPDATE {self.refunds} SET status = ? WHERE refund_id = ?", [(s, r) for r, s in settled.items()])


def _settle_movement(movements: dict[str, list[Any]], settled: dict[str, str], refund_id: str, status: str) -> None:
    if refund_id in movements:
        movements[refund_id][2] = status
    else:
        settled[refund_id] = status


_COLUMNS = ("payment_id", "user_id", "order_id", "kind", "status", "amount", "refunded_amount", "subscription_id", "created_at", "seq",
            "receipt_url")
_STATUS, _AMOUNT, _REFUNDED = _COLUMNS.index("status"), _COLUMNS.index("amount"), _COLUMNS.index("refunded_amount")
_RECEIPT = _COLUMNS.index("receipt_url")


class PaymentsQueries:
    def __init__(self, view_db: ViewDatabase, prefix: str = "") -> None:
        self.view_db = view_db
        # Without a prefix: the live table, which a rebuild may switch (projections/generations.py).
        self._live = LiveProjection(PaymentsProjection(prefix), view_db)

    @property
    def table(self) -> str:
        return self._live.current().table

    def payment_ids(self, user_id: str) -> list[UUID]:
        """Every payment of the user, oldest first (exports)."""
        table = self.table  # looked up before the transaction: it may read the database
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT payment_id FROM {table} WHERE user_id = ? ORDER BY seq", (user_id,)
            ).fetchall()
        return [UUID(row["payment_id"]) for row in rows]

    def pending_payment_ids(self, created_before: datetime) -> list[UUID]:
        """Payments still PENDING that were requested before `created_before`, oldest first."""
        table = self.table  # looked up before the transaction: it may read the database
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT payment_id FROM {table} WHERE status = 'PENDING' AND created_at < ? ORDER BY seq",
                (to_utc_text(created_before),),
            ).fetchall()
        return [UUID(row["payment_id"]) for row in rows]

    def count_pending(self, created_before: datetime) -> int:
        """How many payments are still PENDING that were requested before `created_before` (metrics)."""
        table = self.table
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                f"SELECT COUNT(*) AS n FROM {table} WHERE status = 'PENDING' AND created_at < ?",
                (to_utc_text(created_before),),
            ).fetchone()
        return int(row["n"]) if row else 0

    def payment_ids_between(self, since: datetime | None, until: datetime) -> list[UUID]:
        """Payments requested in [since, until], oldest first (reconciliation: `until` is
        usually now, and a payment requested at this very instant belongs to the report)."""
        table = self.table
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT payment_id FROM {table} WHERE created_at >= ? AND created_at <= ? ORDER BY seq",
                (to_utc_text(since) if since else "", to_utc_text(until)),
            ).fetchall()
        return [UUID(row["payment_id"]) for row in rows]

    def payments_with_pending_refunds(self, requested_before: datetime) -> list[UUID]:
        """Payments with a refund still PENDING that was requested before `requested_before`."""
        refunds = self._live.current().refunds
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT DISTINCT payment_id FROM {refunds} WHERE status = 'PENDING' AND requested_at < ?",
                (to_utc_text(requested_before),),
            ).fetchall()
        return [UUID(row["payment_id"]) for row in rows]

    def recent_payment_ids(self, user_id: str, first: int = 50) -> list[UUID]:
        if first < 1 or first > MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}")
        table = self.table  # looked up before the transaction: it may read the database
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT payment_id FROM {table} WHERE user_id = ? ORDER BY seq DESC LIMIT ?", (user_id, first)
            ).fetchall()
        return [UUID(row["payment_id"]) for row in rows]

    def payments_page(self, user_id: str, first: int = 50, after: str | None = None) -> Page[UUID]:
        """A page of the user's payments, newest first, after the cursor `after` (keyset on `seq`)."""
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}")
        scope = scope_of(user_id)
        where, params = "user_id = ?", [user_id]
        if after is not None:
            (seq,) = CURSORS.decode(after, scope)
            where, params = where + " AND seq < ?", [*params, seq]
        table = self.table  # looked up before the transaction: it may read the database
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT payment_id, seq FROM {table} WHERE {where} ORDER BY seq DESC LIMIT ?", [*params, first + 1]
            ).fetchall()
        page = page_of(rows, first, lambda row: CURSORS.encode(scope, row["seq"]))
        return Page([UUID(row["payment_id"]) for row in page.items], page.next_cursor)
