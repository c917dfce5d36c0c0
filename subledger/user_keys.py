"""The `user_keys` table: per-user keys of personal data (domain.ports.PersonalDataKeys).

Kept apart from the events, so deleting a row is the erasure (crypto-shredding)
while the ledger itself stays append-only. A key is created in its own
transaction before the first event sealed with it is written; a key whose
event then failed to save is an unused row, never an unreadable event.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone

from domain.personal_data import new_key
from projections.database import ViewDatabase

DDL = (
    "CREATE TABLE IF NOT EXISTS user_keys ("
    " subject TEXT PRIMARY KEY, key_material TEXT NOT NULL, created_at TEXT NOT NULL)"
)


class SqlUserKeys:
    def __init__(self, view_db: ViewDatabase) -> None:
        self.view_db = view_db
        with view_db.transaction() as cursor:
            cursor.execute(DDL)

    def key(self, subject: str, *, create: bool) -> bytes | None:
        found = self._read(subject)
        if found is not None or not create:
            return found
        with self.view_db.transaction() as cursor:
            # Two processes creating the first key of a user at once: one insert wins, both use it.
            cursor.execute(
                "INSERT INTO user_keys (subject, key_material, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (subject) DO NOTHING",
                (subject, base64.b64encode(new_key()).decode("ascii"), datetime.now(timezone.utc).isoformat()),
            )
        return self._read(subject)

    def destroy(self, subject: str) -> bool:
        with self.view_db.transaction() as cursor:
            return cursor.execute("DELETE FROM user_keys WHERE subject = ?", (subject,)).rowcount > 0

    def _read(self, subject: str) -> bytes | None:
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute("SELECT key_material FROM user_keys WHERE subject = ?", (subject,)).fetchone()
        return base64.b64decode(row["key_material"]) if row else None
