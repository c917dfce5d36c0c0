"""Where each notification of the outbox stands in its delivery (docs/email.md).

One row per notification that a sender has touched, in `notification_sends`, a
table outside the outbox projection's prefix: a rebuild of the outbox from
position 0 finds every delivery already made and makes none twice. No row means
PENDING (never tried).

A delivery over SMTP moves through these states (`DeliveryState`):

    PENDING -> SENDING -> HANDING_OVER -> SENT
                  |            |
                  v            v
              RETRYING      UNCONFIRMED           (RETRYING -> SENDING ... -> FAILED)

- SENDING: claimed by one sender (compare-and-set on the row), before the message
  text is handed to the server. A claim left behind by a sender that died is
  stale after `lease`: nothing was handed over, so it goes back to RETRYING.
- HANDING_OVER: written just before SMTP DATA. From here on the server may
  accept the message at any moment; if the sender dies (or the connection is
  lost before the server's reply) nobody knows whether it did. Such a
  notification becomes UNCONFIRMED and is NOT sent again: delivery is at most
  once in that window, by choice (a second "payment failed" or "payment
  received" mail is worse for a billing service than one an operator re-sends).
- SENT: the server answered 250 to the message; `sent_at` is that moment.
- LOGGED: development without SMTP wrote it to the log instead; never emailed.
- SKIPPED: there is no address to send to (none on record, or the user's
  personal data was erased); final.
- FAILED: refused or unreachable `max_attempts` times; final.

Times that pace retries (`claimed_at`, `next_attempt_at`) are wall-clock times:
the SMTP server lives in real time, whatever the product's (test) clock says.
Errors are stored without e-mail addresses (`without_addresses`), so nothing
here outlives an erasure of the user's personal data.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from projections.database import ViewCursor, ViewDatabase
from projections.wallet_history import to_utc_text

SENDS = "notification_sends"
#: The table of the first outbox, which knew only "sent" (by the logging sender): migrated once.
OLD_DELIVERIES = "notification_deliveries"
MAX_ERROR_CHARS = 500


class DeliveryState(enum.Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    HANDING_OVER = "HANDING_OVER"
    RETRYING = "RETRYING"
    SENT = "SENT"
    LOGGED = "LOGGED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    UNCONFIRMED = "UNCONFIRMED"


_ADDRESS = re.compile(r"<?[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+>?")


def without_addresses(text: str) -> str:
    """An error as it may be stored and logged: servers quote the recipient in their replies."""
    return _ADDRESS.sub("<address>", " ".join(text.split()))[:MAX_ERROR_CHARS]


def create_table(cursor: ViewCursor) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {SENDS} (id TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " attempts INTEGER NOT NULL, last_error TEXT, claimed_at TEXT, next_attempt_at TEXT,"
        " last_attempt_at TEXT, sent_at TEXT)"
    )
    cursor.execute(f"CREATE INDEX IF NOT EXISTS {SENDS}_state ON {SENDS} (state, next_attempt_at)")
    if _table_exists(cursor, OLD_DELIVERIES):
        # Everything the first outbox marked sent was only ever written to the log.
        cursor.execute(
            f"INSERT INTO {SENDS} (id, state, attempts, last_attempt_at) SELECT id, ?, 1, sent_at"
            # WHERE: SQLite would read a bare ON after FROM as a join's.
            f" FROM {OLD_DELIVERIES} WHERE 1 = 1 ON CONFLICT (id) DO NOTHING",
            (DeliveryState.LOGGED.value,),
        )
        cursor.execute(f"DROP TABLE {OLD_DELIVERIES}")


def _table_exists(cursor: ViewCursor, name: str) -> bool:
    return cursor.table_exists(name)


def columns(alias: str) -> str:
    """The delivery columns a notification row carries, for a LEFT JOIN of SENDS as `alias`."""
    return (f"{alias}.state AS delivery_state, {alias}.attempts AS delivery_attempts, {alias}.last_error AS delivery_error,"
            f" {alias}.last_attempt_at, {alias}.next_attempt_at, {alias}.sent_at")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def delivery_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A selected row's delivery columns as typed values."""
    return {
        "delivery_state": DeliveryState(row["delivery_state"] or "PENDING"),
        "delivery_attempts": row["delivery_attempts"] or 0,
        "delivery_error": row["delivery_error"],
        "last_attempt_at": _time(row["last_attempt_at"]),
        "next_attempt_at": _time(row["next_attempt_at"]),
        "sent_at": _time(row["sent_at"]),
    }


class NotificationDeliveries:
    """The state changes, each one transaction; handed the view database."""

    def __init__(self, view_db: ViewDatabase, max_attempts: int = 1, lease: timedelta = timedelta(minutes=5)) -> None:
        self.view_db = view_db
        self.max_attempts = max_attempts
        self.lease = lease

    def _write(self, sql: str, params: Sequence[Any]) -> bool:
        with self.view_db.transaction() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1

    def claim(self, notification: str, attempts_seen: int, wall: datetime) -> bool:
        """Take the notification for one attempt; False when another sender has it or it moved on."""
        at = to_utc_text(wall)
        if attempts_seen == 0:
            return self._write(
                f"INSERT INTO {SENDS} (id, state, attempts, claimed_at, last_attempt_at) VALUES (?, ?, 1, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (notification, DeliveryState.SENDING.value, at, at),
            )
        return self._write(
            f"UPDATE {SENDS} SET state = ?, attempts = attempts + 1, claimed_at = ?, last_attempt_at = ?"
            " WHERE id = ? AND state = ? AND attempts = ?",
            (DeliveryState.SENDING.value, at, at, notification, DeliveryState.RETRYING.value, attempts_seen),
        )

    def record_logged(self, notifications: Sequence[str], wall: datetime) -> list[str]:
        """Mark notifications never tried as LOGGED, all in one transaction (the logging sender
        takes a whole batch of the outbox at once); returns those this call recorded, in order:
        the others another sender recorded first, and only the one that recorded a notification
        writes it to the log."""
        at = to_utc_text(wall)
        recorded = []
        with self.view_db.transaction() as cursor:
            for notification in notifications:
                cursor.execute(
                    f"INSERT INTO {SENDS} (id, state, attempts, last_attempt_at) VALUES (?, ?, 1, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (notification, DeliveryState.LOGGED.value, at),
                )
                if cursor.rowcount == 1:
                    recorded.append(notification)
        return recorded

    def skip(self, notification: str, error: str) -> None:
        """A claimed notification that has no address to go to."""
        self._move(notification, DeliveryState.SENDING,
                   "state = ?, last_error = ?, claimed_at = NULL, next_attempt_at = NULL, attempts = attempts - 1",
                   (DeliveryState.SKIPPED.value, error))

    def handing_over(self, notification: str) -> None:
        """Just before DATA: from now on the server may accept it."""
        self._move(notification, DeliveryState.SENDING, "state = ?", (DeliveryState.HANDING_OVER.value,))

    def sent(self, notification: str, at: datetime) -> None:
        self._move(notification, DeliveryState.HANDING_OVER, "state = ?, sent_at = ?, last_error = NULL, claimed_at = NULL",
                   (DeliveryState.SENT.value, to_utc_text(at)))

    def unconfirmed(self, notification: str, error: str) -> None:
        self._move(notification, DeliveryState.HANDING_OVER, "state = ?, last_error = ?, claimed_at = NULL",
                   (DeliveryState.UNCONFIRMED.value, without_addresses(error)))

    def failed_attempt(self, notification: str, attempts: int, error: str, retry_in: timedelta, wall: datetime) -> DeliveryState:
        """The server refused or could not be reached: RETRYING after `retry_in`, or FAILED at the last attempt."""
        state = DeliveryState.FAILED if attempts >= self.max_attempts else DeliveryState.RETRYING
        next_at = to_utc_text(wall + retry_in) if state is DeliveryState.RETRYING else None
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {SENDS} SET state = ?, last_error = ?, next_attempt_at = ?, claimed_at = NULL"
                " WHERE id = ? AND state IN (?, ?)",
                (state.value, without_addresses(error), next_at, notification,
                 DeliveryState.SENDING.value, DeliveryState.HANDING_OVER.value),
            )
        return state

    def resend(self, notification: str, wall: datetime) -> bool:
        """An operator's resend of a FAILED or UNCONFIRMED notification: RETRYING, due now, for
        one more attempt (its attempts are kept, so a failure ends it FAILED again, not a new
        series). False when it is in any other state (nothing changes)."""
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {SENDS} SET state = ?, next_attempt_at = ?, claimed_at = NULL WHERE id = ? AND state IN (?, ?)",
                (DeliveryState.RETRYING.value, to_utc_text(wall), notification,
                 DeliveryState.FAILED.value, DeliveryState.UNCONFIRMED.value),
            )
            return cursor.rowcount == 1

    def _move(self, notification: str, from_state: DeliveryState, assignments: str, params: Sequence[Any]) -> None:
        self._write(f"UPDATE {SENDS} SET {assignments} WHERE id = ? AND state = ?", (*params, notification, from_state.value))

    def release_stale(self, wall: datetime) -> int:
        """Claims of senders that died: SENDING ones are tried again (nothing was handed over),
        HANDING_OVER ones become UNCONFIRMED (the server may have the message)."""
        before = to_utc_text(wall - self.lease)
        now = to_utc_text(wall)
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {SENDS} SET state = CASE WHEN attempts >= ? THEN ? ELSE ? END, next_attempt_at = ?,"
                " claimed_at = NULL, last_error = ? WHERE state = ? AND claimed_at < ?",
                (self.max_attempts, DeliveryState.FAILED.value, DeliveryState.RETRYING.value, now,
                 "the sender stopped before handing the message to the server", DeliveryState.SENDING.value, before),
            )
            retried = cursor.rowcount
            cursor.execute(
                f"UPDATE {SENDS} SET state = ?, claimed_at = NULL, last_error = ? WHERE state = ? AND claimed_at < ?",
                (DeliveryState.UNCONFIRMED.value,
                 "the sender stopped while the server was receiving the message: it may have been delivered,"
                 " so it is not sent again", DeliveryState.HANDING_OVER.value, before),
            )
            return retried + cursor.rowcount
