"""The `user_keys` table: per-user keys of personal data (domain.ports.PersonalDataKeys).

Kept apart from the events, so deleting a row is the erasure (crypto-shredding)
while the ledger itself stays append-only. A key is created in its own
transaction before the first event sealed with it is written; a key whose
event then failed to save is an unused row, never an unreadable event. A save
gets the keys of all its subjects at once (`sealing_keys`): one read, and one
transaction creating those that are missing.

Each row is stored wrapped by the master key (`subledger/master_keys.py`,
docs/keys.md): the database alone does not hold what unseals personal data.
`rotate()` re-wraps rows under the current master key and touches nothing
else: the events were sealed with the per-user keys, which do not change.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog

from domain.personal_data import new_key
from projections.database import ViewCursor, ViewDatabase
from subledger.master_keys import KEY_ID_CHARS, WRAP_PREFIX, MasterKeyring, UnknownMasterKey, wrapped_by
from subledger.settings import StartupRefused

log = structlog.get_logger("subledger.keys")

#: Subjects looked up per statement when a batch of events is decoded.
KEYS_PER_SELECT = 500
#: Characters of "mk1:<key id>" at the start of a wrapped row.
PREFIX_CHARS = len(WRAP_PREFIX) + 1 + KEY_ID_CHARS

DDL = (
    "CREATE TABLE IF NOT EXISTS user_keys ("
    " subject TEXT PRIMARY KEY, key_material TEXT NOT NULL, created_at TEXT NOT NULL)"
)


@dataclass
class RotationReport:
    rewrapped: int = 0  # wrapped by another master key before, by the current one now
    wrapped: int = 0  # stored unwrapped before
    current: int = 0  # already wrapped by the current master key
    erased_meanwhile: int = 0  # deleted (erasure) between reading and re-wrapping
    left: int = 0  # still not under the current key at the end (written by a process with an older key)


class SqlUserKeys:
    def __init__(self, view_db: ViewDatabase, keyring: MasterKeyring | None = None, *, create: bool = True) -> None:
        self.view_db = view_db
        self.keyring = keyring or MasterKeyring()
        if create:  # else `subledger migrate` made it (projections/versions.py)
            with view_db.transaction() as cursor:
                cursor.execute(DDL)

    def key(self, subject: str, *, create: bool) -> bytes | None:
        found = self._read(subject)
        if found is not None or not create:
            return found
        with self.view_db.transaction() as cursor:
            # Two processes creating the first key of a user at once: one insert wins, both
            # use it (read back in the same transaction: one round of BEGIN/COMMIT, not two).
            cursor.execute(
                "INSERT INTO user_keys (subject, key_material, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (subject) DO NOTHING",
                (subject, self.keyring.wrap(subject, new_key()), datetime.now(timezone.utc).isoformat()),
            )
            return self._unwrapped(subject, cursor)

    def keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The keys of those subjects that have one: one statement per 500 subjects, outside a
        transaction (each row stands alone: a key erased between two statements is erased)."""
        with self.view_db.autocommit() as cursor:
            found = _stored(cursor, sorted(set(subjects)))
        return {subject: self.keyring.unwrap(subject, material) for subject, material in found.items()}

    def sealing_keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The key of every subject, those missing created in one transaction (a save's events)."""
        wanted = set(subjects)
        found = self.keys(wanted)
        missing = sorted(wanted - found.keys())
        if not missing:
            return found
        now = datetime.now(timezone.utc).isoformat()
        with self.view_db.transaction() as cursor:
            # As in `key`: another process may create one of them meanwhile; its key wins, and is read back.
            cursor.executemany(
                "INSERT INTO user_keys (subject, key_material, created_at) VALUES (?, ?, ?) ON CONFLICT (subject) DO NOTHING",
                [(subject, self.keyring.wrap(subject, new_key()), now) for subject in missing],
            )
            made = _stored(cursor, missing)
        found.update((subject, self.keyring.unwrap(subject, material)) for subject, material in made.items())
        return found

    def destroy(self, subject: str) -> bool:
        with self.view_db.transaction() as cursor:
            return cursor.execute("DELETE FROM user_keys WHERE subject = ?", (subject,)).rowcount > 0

    def _read(self, subject: str) -> bytes | None:
        with self.view_db.transaction(readonly=True) as cursor:
            return self._unwrapped(subject, cursor)

    def _unwrapped(self, subject: str, cursor: ViewCursor) -> bytes | None:
        row = cursor.execute("SELECT key_material FROM user_keys WHERE subject = ?", (subject,)).fetchone()
        return self.keyring.unwrap(subject, row["key_material"]) if row else None

    # ------------------------------------------------------------ startup and rotation
    def check(self) -> None:
        """Refuse to start when some row cannot be unwrapped with the keys given; warn about
        rows left unwrapped. Reads at most two rows (LIMIT 1 each)."""
        known = self.keyring.known_ids
        foreign = self._first_wrapped_by_other(known)
        if foreign is not None:
            if not known:
                raise StartupRefused(
                    f"the personal-data keys are wrapped by master key {foreign}: set SUBLEDGER_MASTER_KEY to it"
                )
            raise StartupRefused(str(UnknownMasterKey(foreign)) + ": set the master key they were wrapped with")
        if self.keyring.current is None:
            log.warning("user_keys_unwrapped", reason="SUBLEDGER_MASTER_KEY is not set (development only)")
        elif self._any_unwrapped():
            log.warning("user_keys_unwrapped", reason="rows from before the master key", fix="subledger keys rotate")

    def counts(self) -> dict[str, int]:
        """Rows per master key id ("unwrapped" for rows stored in clear)."""
        counts: dict[str, int] = {}
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT CASE WHEN key_material LIKE ? THEN substr(key_material, 1, {PREFIX_CHARS}) ELSE 'unwrapped' END"
                " AS k, COUNT(*) AS n FROM user_keys GROUP BY 1",
                (WRAP_PREFIX + ":%",),
            ).fetchall()
        for row in rows:
            name = row["k"] if row["k"] == "unwrapped" else row["k"].split(":", 1)[1]
            counts[name] = counts.get(name, 0) + int(row["n"])
        return counts

    def rotate(self, batch_size: int = 500, progress: Callable[[int], None] | None = None) -> RotationReport:
        """Re-wrap every row under the current master key, one transaction per batch. A row
        is rewritten only if it is unchanged since it was read, so an erasure meanwhile stays
        an erasure. Safe to run again, and while the service runs."""
        if self.keyring.current is None:
            raise StartupRefused("keys rotate needs SUBLEDGER_MASTER_KEY (the key to wrap under)")
        report = RotationReport()
        current_prefix = f"{WRAP_PREFIX}:{self.keyring.current_id}:"
        after = ""
        while True:
            with self.view_db.transaction(readonly=True) as cursor:
                rows = cursor.execute(
                    "SELECT subject, key_material FROM user_keys WHERE subject > ? ORDER BY subject LIMIT ?",
                    (after, batch_size),
                ).fetchall()
            if not rows:
                break
            after = rows[-1]["subject"]
            updates = []
            for row in rows:
                stored = row["key_material"]
                if stored.startswith(current_prefix):
                    report.current += 1
                    continue
                data_key = self.keyring.unwrap(row["subject"], stored)  # UnknownMasterKey: stop, change nothing more
                updates.append((self.keyring.wrap(row["subject"], data_key), row["subject"], stored, wrapped_by(stored)))
            with self.view_db.transaction() as cursor:
                for new, subject, old, old_id in updates:
                    changed = cursor.execute(
                        "UPDATE user_keys SET key_material = ? WHERE subject = ? AND key_material = ?", (new, subject, old)
                    ).rowcount
                    if not changed:
                        report.erased_meanwhile += 1
                    elif old_id is None:
                        report.wrapped += 1
                    else:
                        report.rewrapped += 1
            if progress is not None:
                progress(len(rows))
        with self.view_db.transaction(readonly=True) as cursor:
            left = cursor.execute(
                "SELECT COUNT(*) AS n FROM user_keys WHERE key_material NOT LIKE ?", (current_prefix + "%",)
            ).fetchone()
        report.left = int(left["n"]) if left else 0
        return report

    def _first_wrapped_by_other(self, known: tuple[str, ...]) -> str | None:
        marks = ", ".join("?" for _ in known) or "''"
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                f"SELECT key_material FROM user_keys WHERE key_material LIKE ?"
                f" AND substr(key_material, 1, {PREFIX_CHARS}) NOT IN ({marks}) LIMIT 1",
                (WRAP_PREFIX + ":%", *[f"{WRAP_PREFIX}:{k}" for k in known]),
            ).fetchone()
        return wrapped_by(row["key_material"]) if row else None

    def _any_unwrapped(self) -> bool:
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                "SELECT 1 AS one FROM user_keys WHERE key_material NOT LIKE ? LIMIT 1", (WRAP_PREFIX + ":%",)
            ).fetchone()
        return row is not None


def _stored(cursor: ViewCursor, subjects: list[str]) -> dict[str, str]:
    """subject -> stored (wrapped) key material of those `subjects` with a row."""
    rows = cursor.rows_by_key("user_keys", "subject", subjects, columns="subject, key_material", chunk=KEYS_PER_SELECT)
    return {subject: row["key_material"] for subject, row in rows.items()}
