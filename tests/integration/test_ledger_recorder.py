"""The ledger's PostgreSQL recorder (subledger/pg_recorder.py): a save is one call of
`subledger_insert_events`, which still takes eventsourcing's EXCLUSIVE lock of the events
table, so notification ids commit in the order they were issued.

The lock is seen, not assumed: another session holds the table in ROW SHARE mode, which an
insert's own ROW EXCLUSIVE lock does not conflict with but EXCLUSIVE does. A save then waits
on that lock (PostgreSQL's `pg_locks` shows it, not granted) until the other session ends,
and lands whole afterwards.

Its reads render eventsourcing's statements once; they must answer exactly as
eventsourcing's own `select_events` does, for every combination of its conditions.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg
import pytest
from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresAggregateRecorder

from subledger.core import Built
from subledger.pg_recorder import INSERT_FUNCTION, LedgerRecorder
from subledger.storage import Database
from tests.integration.cores import opened_cores

NOW = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def built(postgres_url: str) -> Iterator[Built]:
    with opened_cores(postgres_url) as (built,):
        yield built


def events_table(built: Built) -> str:
    recorder = built.ledger.recorder
    assert isinstance(recorder, LedgerRecorder)
    return f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'


def test_a_save_waits_for_the_events_tables_exclusive_lock(built: Built, postgres_url: str) -> None:
    table = events_table(built)
    built.ledger.wallets.adjust_points("locked", 100, "test", now=NOW, actor="test")  # the wallet exists
    conninfo = Database.from_url(postgres_url).psycopg_conninfo()
    with psycopg.connect(conninfo) as holder, psycopg.connect(conninfo, autocommit=True) as watcher:
        holder.execute(f"LOCK TABLE {table} IN ROW SHARE MODE")
        errors: list[BaseException] = []

        def save() -> None:
            try:
                built.ledger.wallets.adjust_points("locked", 5, "test", now=NOW, actor="test")
            except BaseException as error:  # reported below
                errors.append(error)

        saving = threading.Thread(target=save)
        saving.start()
        deadline = time.monotonic() + 30
        waiting = 0
        while waiting == 0 and time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND mode = 'ExclusiveLock' AND NOT granted",
                (table,),
            ).fetchone()[0]
            time.sleep(0.05)
        assert waiting == 1, "the save never asked for the table's EXCLUSIVE lock"
        assert saving.is_alive()
        holder.rollback()  # the other session ends; the save goes on
        saving.join(timeout=30)
    assert not saving.is_alive() and errors == []
    wallet = built.ledger.wallet("locked")
    assert wallet is not None and wallet.usable_balance(NOW) == 105


def test_saves_go_through_the_function(built: Built, postgres_url: str) -> None:
    built.ledger.wallets.adjust_points("first", 10, "test", now=NOW, actor="test")
    schema = built.ledger.recorder.datastore.schema
    conninfo = Database.from_url(postgres_url).psycopg_conninfo()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP FUNCTION "{schema}"."{INSERT_FUNCTION}"')
    with pytest.raises(ProgrammingError, match=INSERT_FUNCTION):
        built.ledger.wallets.adjust_points("second", 10, "test", now=NOW, actor="test")


def test_reads_answer_as_eventsourcings_own(built: Built) -> None:
    for amount in range(1, 7):  # a wallet of seven events: opened, then six adjustments
        built.ledger.wallets.adjust_points("reader", amount, "test", now=NOW, actor="test")
    recorder = built.ledger.recorder
    assert isinstance(recorder, LedgerRecorder)
    wallet = built.ledger.wallet("reader")
    assert wallet is not None and wallet.version >= 7
    compared = 0
    for gt, lte, desc, limit in itertools.product((None, 2), (None, 5), (False, True), (None, 2)):
        for _ in range(2):  # the second call uses the statement rendered by the first
            ours = recorder.select_events(wallet.id, gt=gt, lte=lte, desc=desc, limit=limit)
            theirs = PostgresAggregateRecorder.select_events(recorder, wallet.id, gt=gt, lte=lte, desc=desc, limit=limit)
            assert [(e.originator_version, e.topic, e.state) for e in ours] == [
                (e.originator_version, e.topic, e.state) for e in theirs
            ], (gt, lte, desc, limit)
            assert ours, (gt, lte, desc, limit)
            compared += 1
    assert compared == 32
    versions = [e.originator_version for e in recorder.select_events(wallet.id, gt=2, lte=5, desc=True, limit=2)]
    assert versions == [5, 4]
