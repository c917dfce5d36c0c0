"""Rebuilding read models beside the live ones, then switching (SPEC §7).

1. Claim: one rebuild per read model at a time (`projection_rebuilds`); the
   leftovers of a rebuild whose process died are dropped first.
2. Fill a copy of each read model under a fresh prefix from position 0,
   while queries keep answering from the live tables; the copies' secondary
   indexes are built once the bulk is in (projections/copies.py).
3. Switch, in one transaction for all of them, once every copy has reached
   the live position (checked with the live tracking rows locked, so the live
   runner cannot move meanwhile): `projection_generations` names the copies'
   prefixes; the old sets are marked retired.
4. Drop the retired sets after a grace period, long enough for every process
   to have looked up the new prefix (runner.GENERATION_REFRESH_SECONDS).

Killed at any point before step 3, the live read model is untouched; the next
rebuild cleans up and starts again. Killed after step 3, the switch is done
and the next rebuild drops the retired tables.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from domain.errors import Conflict, InvalidInput
from projections.copies import BULK_BATCH_SIZE, Progress, create_copies, create_indexes, fill_copies
from projections.database import ViewCursor, ViewDatabase
from projections.generations import live_prefix, prefix_of, tables_with_prefix, with_prefix
from projections.status import status

log = logging.getLogger(__name__)

REBUILDS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_rebuilds ("
    " name TEXT NOT NULL, prefix TEXT NOT NULL, state TEXT NOT NULL, owner TEXT NOT NULL,"
    " heartbeat_ms BIGINT NOT NULL, tables TEXT NOT NULL, PRIMARY KEY (name, prefix))"
)
#: A building copy whose heartbeat is older than this belongs to a dead rebuild.
STALE_SECONDS = 15.0
DROP_GRACE_SECONDS = 5.0

_HOST = socket.gethostname()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _alive(owner: str, heartbeat_ms: int) -> bool:
    if _now_ms() - heartbeat_ms > STALE_SECONDS * 1000:
        return False
    host, _, pid = owner.rpartition(":")
    if host != _HOST:
        return True  # another machine: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class Rebuilder:
    def __init__(
        self,
        ledger: Any,
        view_db: ViewDatabase,
        runners: Sequence[Any],
        *,
        batch_size: int = BULK_BATCH_SIZE,
        grace_seconds: float = DROP_GRACE_SECONDS,
        create: bool = True,
    ) -> None:
        self.ledger = ledger
        self.view_db = view_db
        self.runners = list(runners)
        self.batch_size = batch_size
        self.grace_seconds = grace_seconds
        self.owner = f"{_HOST}:{os.getpid()}"
        self._timers: list[threading.Timer] = []
        if create:
            with view_db.transaction() as cursor:
                cursor.execute(REBUILDS_DDL)

    def select(self, names: Sequence[str] | None) -> list[Any]:
        if names is None:
            return list(self.runners)
        by_name = {runner.name: runner for runner in self.runners}
        unknown = [n for n in names if n not in by_name]
        if unknown or not names:
            raise InvalidInput(f"unknown projection {', '.join(unknown) or '(none)'}; known: {', '.join(by_name)}")
        return [by_name[n] for n in dict.fromkeys(names)]

    # ------------------------------------------------------------ rebuilding
    def rebuild(self, names: Sequence[str] | None = None, *, progress: Progress | None = None, wait_for_drop: bool = False) -> list[dict[str, Any]]:
        """Rebuild the named read models (default: all) and switch to them; returns their status."""
        runners = self.select(names)
        self.drop_retired(self.grace_seconds)
        copies = self._claim(runners)
        try:
            indexes = create_copies(self.view_db, copies, defer_indexes=True)
            heartbeat = self._heartbeat(copies)
            # The bulk of the log first, into tables with only their primary keys...
            fill_copies(self.ledger, self.view_db, copies, batch_size=self.batch_size, progress=progress, on_batch=heartbeat)
            create_indexes(self.view_db, indexes, on_each=heartbeat)
            # ...then whatever the live side recorded meanwhile, until the switch finds the copies caught up.
            while True:
                fill_copies(self.ledger, self.view_db, copies, batch_size=self.batch_size, progress=progress, on_batch=heartbeat)
                if self._switch(runners, copies):
                    break
        except BaseException:
            self._abandon(copies)
            raise
        for runner in runners:
            runner.current(refresh=True)
        if wait_for_drop:
            time.sleep(self.grace_seconds)
            self.drop_retired(0)
        else:
            timer = threading.Timer(self.grace_seconds, self._drop_quietly)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)
        return status(runners)

    def _claim(self, runners: Sequence[Any]) -> list[Any]:
        copies = []
        # Looked up before the transaction: `current()` may read the database itself.
        lives = [runner.current(refresh=True) for runner in runners]
        with self.view_db.transaction() as cursor:
            for runner, live in zip(runners, lives):
                rows = cursor.execute(
                    "SELECT prefix, owner, heartbeat_ms FROM projection_rebuilds WHERE name = ? AND state = 'building'",
                    (runner.name,),
                ).fetchall()
                for row in rows:
                    if _alive(row["owner"], int(row["heartbeat_ms"])):
                        raise Conflict(f"a rebuild of {runner.name} is already running")
                    log.warning("projection=%s prefix=%s dropping an interrupted rebuild", runner.name, row["prefix"])
                    self._drop_prefix(cursor, runner.name, row["prefix"], tables_with_prefix(cursor, self.view_db.kind, row["prefix"]))
                    cursor.execute("DELETE FROM projection_rebuilds WHERE name = ? AND prefix = ?", (runner.name, row["prefix"]))
                copy = with_prefix(live, f"g{secrets.token_hex(4)}_")
                cursor.execute(
                    "INSERT INTO projection_rebuilds (name, prefix, state, owner, heartbeat_ms, tables) VALUES (?, ?, 'building', ?, ?, '')",
                    (runner.name, prefix_of(copy), self.owner, _now_ms()),
                )
                copies.append(copy)
        return copies

    def _heartbeat(self, copies: Sequence[Any]) -> Any:
        prefixes = [prefix_of(c) for c in copies]

        def beat(cursor: ViewCursor) -> None:
            cursor.execute(
                f"UPDATE projection_rebuilds SET heartbeat_ms = ? WHERE state = 'building' AND prefix IN ({', '.join('?' * len(prefixes))})",
                (_now_ms(), *prefixes),
            )

        return beat

    def _switch(self, runners: Sequence[Any], copies: Sequence[Any]) -> bool:
        """Make the copies live if none is behind its live read model; False to fill more first."""
        with self.view_db.transaction() as cursor:
            plan = []
            for runner, copy in zip(runners, copies):
                old = live_prefix(cursor, runner.name) or ""
                live_tracking = old + runner.name
                # Lock the live tracking row: the live runner cannot commit a batch until the switch is decided.
                cursor.execute("UPDATE projection_tracking SET position = position WHERE name = ?", (live_tracking,))
                live = _position(cursor, live_tracking)
                if _position(cursor, copy.tracking_name) < live:
                    return False
                bases = [t[len(prefix_of(copy)) :] for t in tables_with_prefix(cursor, self.view_db.kind, prefix_of(copy))]
                plan.append((runner.name, old, copy, [old + b for b in bases]))
            for name, old, copy, old_tables in plan:
                cursor.execute(
                    "INSERT INTO projection_generations (name, prefix) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET prefix = excluded.prefix",
                    (name, prefix_of(copy)),
                )
                cursor.execute("DELETE FROM projection_rebuilds WHERE name = ? AND prefix IN (?, ?)", (name, old, prefix_of(copy)))
                cursor.execute(
                    "INSERT INTO projection_rebuilds (name, prefix, state, owner, heartbeat_ms, tables) VALUES (?, ?, 'retired', ?, ?, ?)",
                    (name, old, self.owner, _now_ms(), ",".join(old_tables)),
                )
                log.info("projection=%s prefix=%r switched to the rebuilt tables (was %r)", name, prefix_of(copy), old)
        return True

    def _abandon(self, copies: Sequence[Any]) -> None:
        """This process gave up (error, Ctrl-C): drop its copies now rather than leave them to the next rebuild."""
        try:
            with self.view_db.transaction() as cursor:
                for copy in copies:
                    prefix = prefix_of(copy)
                    self._drop_prefix(cursor, copy.name, prefix, tables_with_prefix(cursor, self.view_db.kind, prefix))
                    cursor.execute("DELETE FROM projection_rebuilds WHERE name = ? AND prefix = ?", (copy.name, prefix))
        except Exception:
            log.exception("could not drop the copies of an abandoned rebuild; the next rebuild will")

    # ------------------------------------------------------------ retired sets
    def drop_retired(self, older_than_seconds: float) -> int:
        """Drop the tables of generations switched out more than `older_than_seconds` ago."""
        cutoff = _now_ms() - int(older_than_seconds * 1000)
        with self.view_db.transaction() as cursor:
            rows = cursor.execute(
                "SELECT name, prefix, tables FROM projection_rebuilds WHERE state = 'retired' AND heartbeat_ms <= ?",
                (cutoff,),
            ).fetchall()
            for row in rows:
                self._drop_prefix(cursor, row["name"], row["prefix"], [t for t in row["tables"].split(",") if t])
                cursor.execute("DELETE FROM projection_rebuilds WHERE name = ? AND prefix = ?", (row["name"], row["prefix"]))
        return len(rows)

    def _drop_quietly(self) -> None:
        try:
            self.drop_retired(self.grace_seconds)
        except Exception:
            log.exception("dropping retired read-model tables failed; the next rebuild will")

    def _drop_prefix(self, cursor: ViewCursor, name: str, prefix: str, tables: Sequence[str]) -> None:
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("DELETE FROM projection_tracking WHERE name = ?", (prefix + name,))

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()


def _position(cursor: ViewCursor, tracking_name: str) -> int:
    row = cursor.execute("SELECT position FROM projection_tracking WHERE name = ?", (tracking_name,)).fetchone()
    return int(row["position"]) if row else 0
