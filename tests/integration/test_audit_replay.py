"""The audit's replay of every aggregate (projections/verify_rules.py) on a SQLite ledger:
a stored event that cannot be decoded is named as a finding while the rest of its batch
still counts, and a replay continued from a position (as `audit verify` continues the
batches its rebuild pass already decoded) ends where a replay of the whole log does."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from domain.catalog import default_catalog
from domain.ids import wallet_id
from domain.ledger import Ledger
from projections.verify_rules import Replay, replay_ledger

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def ledger(tmp_path: Path):
    ledger = Ledger(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "ledger.db")},
        catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"),
    )
    for n in range(6):
        user = f"u{n}"
        # Sealed personal fields in the log: decoding a batch reads their keys.
        ledger.customers.record_contact_details(user, f"{user}@example.com", f"name {n}", T0)
        for amount in (100, 250, -50):
            ledger.wallets.adjust_points(user, amount, "gift", now=T0, actor="ops")
    yield ledger
    ledger.close()


def state(aggregate) -> dict:
    return {k: v for k, v in vars(aggregate).items() if not k.startswith("_") or k in ("_id", "_version")}


def test_an_undecodable_event_is_named_and_the_rest_of_its_batch_still_replays(ledger: Ledger, tmp_path: Path) -> None:
    broken = str(wallet_id("u2"))
    head = ledger.recorder.max_notification_id()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        (position,) = db.execute(  # eventsourcing's SQLite keeps ids as hex; the rowid is the position
            "SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 2", (wallet_id("u2").hex,)
        ).fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (b"not an event", position))
    assert 1 < position < head  # in the middle of the one batch below

    replay = replay_ledger(ledger, 1000, None)
    assert replay.events == head
    assert len(replay.problems) == 1 and replay.problems[0].startswith(f"ledger: aggregate {broken} cannot be replayed at version 2")
    assert broken not in replay.aggregates and replay.last_position[broken] > position  # its later events counted, not applied
    for user in ("u0", "u1", "u3", "u4", "u5"):  # before and after the broken event in the same batch
        assert replay.aggregates[str(wallet_id(user))].total_balance == 300 == ledger.wallet(user).total_balance


def test_a_replay_continued_from_a_position_ends_as_a_whole_one(ledger: Ledger) -> None:
    whole = replay_ledger(ledger, 7, None)
    split_at = 11
    part = Replay()
    first = ledger.recorder.select_notifications(start=0, limit=split_at, inclusive_of_start=False)
    part.apply(zip((n.id for n in first), ledger.mapper.to_domain_events(first)))
    replay_ledger(ledger, 7, None, replay=part, after=first[-1].id)
    assert (part.events, part.last_position, part.types, part.lot_flows, part.problems) == (
        whole.events, whole.last_position, whole.types, whole.lot_flows, [])
    assert part.aggregates.keys() == whole.aggregates.keys()
    assert all(state(part.aggregates[k]) == state(whole.aggregates[k]) for k in whole.aggregates)
