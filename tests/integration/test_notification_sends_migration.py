"""The first outbox kept only `notification_deliveries (id, sent_at)`, filled by a sender that
merely logged. Opening the new outbox moves those rows into `notification_sends` as LOGGED
(never e-mailed, so sentAt stays empty, and SMTP does not send them now) and drops the old table."""
from __future__ import annotations

from projections.database import ViewDatabase
from projections.notification_deliveries import OLD_DELIVERIES, SENDS, _table_exists, create_table
from subledger.storage import Database


def test_the_first_outbox_deliveries_become_logged_once(database_url: str) -> None:
    view_db = ViewDatabase.open(Database.from_url(database_url))
    try:
        with view_db.transaction() as cursor:
            cursor.execute(f"CREATE TABLE {OLD_DELIVERIES} (id TEXT PRIMARY KEY, sent_at TEXT NOT NULL)")
            cursor.execute(f"INSERT INTO {OLD_DELIVERIES} (id, sent_at) VALUES (?, ?)", ("n-1", "2026-03-01T01:00:00.000000+00:00"))
        for _ in range(2):  # every start runs it; the second finds nothing to move
            with view_db.transaction() as cursor:
                create_table(cursor)
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT id, state, attempts, sent_at, last_attempt_at FROM {SENDS}").fetchall()
            assert not _table_exists(cursor, OLD_DELIVERIES)
        assert rows == [{"id": "n-1", "state": "LOGGED", "attempts": 1, "sent_at": None,
                         "last_attempt_at": "2026-03-01T01:00:00.000000+00:00"}]
    finally:
        view_db.close()
