"""The projection runner and the wallet history read model, on SQLite and PostgreSQL.

The ledger is driven through its public commands; the read model must agree
with the ledger's own answers row for row, however the runner was stopped,
crashed or raced along the way.
"""
from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.persistence import RecordConflictError

from domain.catalog import default_catalog
from domain.errors import InvalidInput
from domain.ledger import Ledger
from projections.database import ViewDatabase
from projections.follower import LogFollower
from projections.runner import ProjectionRunner
from projections.status import status
from projections.wallet_history import WalletHistory
from subledger.storage import Database

TZ = ZoneInfo("Asia/Seoul")
START = datetime(2025, 1, 1, 9, 0, tzinfo=TZ)


@pytest.fixture
def database(database_url: str) -> Database:
    return Database.from_url(database_url)


@pytest.fixture
def ledger(database: Database):
    ledger = Ledger(env=database.ledger_env(pool_size=4), catalog=default_catalog(), tz=TZ)
    yield ledger
    ledger.close()


@pytest.fixture
def view_db(database: Database):
    view_db = ViewDatabase.open(database)
    yield view_db
    view_db.close()


@pytest.fixture
def users() -> list[str]:
    return [f"user-{uuid.uuid4().hex[:8]}" for _ in range(3)]


def drive(ledger: Ledger, users: list[str], steps: int, seed: int, now: datetime = START) -> datetime:
    """A reproducible mix of credits, rewards, spends, debits and expiry sweeps; returns the last time used."""
    rng = random.Random(seed)
    for step in range(steps):
        now += timedelta(hours=rng.randint(1, 40))
        user = rng.choice(users)
        wallet = ledger.wallet(user)
        usable = wallet.usable_balance(now) if wallet else 0
        roll = rng.random()
        if roll < 0.3 or not usable:
            expires_at = now + timedelta(days=rng.randint(1, 15)) if rng.random() < 0.7 else None
            ledger.wallets.adjust_points(user, rng.randint(1, 500), "goodwill", now=now, actor="admin", expires_at=expires_at)
        elif roll < 0.45:
            ledger.wallets.reward_points(user, "community_post", now=now, actor=user)
        elif roll < 0.75:
            ledger.wallets.spend_points(user, service=None, amount=rng.randint(1, usable), service_id=f"s-{seed}-{step}", now=now)
        elif roll < 0.85:
            ledger.wallets.adjust_points(user, -rng.randint(1, usable), "correction", now=now, actor="admin")
        else:
            ledger.wallets.expire_wallet_points(user, now)
    return now


def ledger_transactions(ledger: Ledger, user: str) -> list[dict]:
    """The user's transactions as the ledger itself answers them, newest first."""
    wallet = ledger.wallet(user)
    found = []
    for version in range(1, wallet.version + 1):
        try:
            found.append(ledger.wallet_transaction(user, version))
        except LookupError:  # Opened and other events that move no points
            continue
    return found[::-1]


def all_pages(history: WalletHistory, view_db: ViewDatabase, user: str, first: int, **filters) -> list[dict]:
    items, total, cursor = history.history(view_db, user, first=first, **filters)
    while cursor is not None:
        page, page_total, cursor = history.history(view_db, user, first=first, after=cursor, **filters)
        assert page_total == total
        items += page
    assert len(items) == total
    return items


def dump(view_db: ViewDatabase, history: WalletHistory) -> dict[str, list[dict]]:
    """Every row of a projection's tables, in a fixed order."""
    with view_db.transaction(readonly=True) as cursor:
        return {
            "owners": cursor.execute(f"SELECT * FROM {history.owners} ORDER BY wallet_id").fetchall(),
            "transactions": cursor.execute(f"SELECT * FROM {history.transactions} ORDER BY seq").fetchall(),
            "lots": cursor.execute(f"SELECT * FROM {history.lots} ORDER BY user_id, lot_id").fetchall(),
        }


class Crash(Exception):
    pass


class CrashingHistory(WalletHistory):
    """Dies after writing the rows of its `crash_on`-th batch, before the runner commits."""

    def __init__(self, prefix: str, crash_on: int) -> None:
        super().__init__(prefix)
        self.crash_on = crash_on
        self.batches = 0

    def apply(self, cursor, events) -> None:
        super().apply(cursor, events)
        self.batches += 1
        if self.batches == self.crash_on:
            raise Crash


def test_history_agrees_with_the_ledger(ledger, view_db, users):
    drive(ledger, users, steps=60, seed=1)
    history = WalletHistory()
    runner = ProjectionRunner(ledger, history, view_db, batch_size=16)

    assert runner.catch_up() > 0
    assert runner.position() == runner.head()
    for user in users:
        expected = ledger_transactions(ledger, user)
        items = all_pages(history, view_db, user, first=500)
        assert items == expected
        assert items[0]["balance_after"] == ledger.wallet(user).total_balance
        for newer, older in zip(items, items[1:]):
            assert newer["balance_before"] == older["balance_after"]
            assert newer["balance_after"] - newer["balance_before"] == newer["amount"]
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT lot_id, remaining FROM {history.lots} WHERE user_id = ?", (user,)).fetchall()
        assert {r["lot_id"]: r["remaining"] for r in rows} == {
            lot_id: lot["remaining"] for lot_id, lot in ledger.wallet(user).lots.items()
        }


def test_history_filters_by_type_and_time(ledger, view_db, users):
    drive(ledger, users, steps=60, seed=2)
    history = WalletHistory()
    ProjectionRunner(ledger, history, view_db).catch_up()
    user = users[0]
    expected = ledger_transactions(ledger, user)

    for type_ in ("USAGE", "ADJUSTMENT", "EXPIRATION", "REWARD"):
        assert all_pages(history, view_db, user, first=5, type=type_) == [t for t in expected if t["type"] == type_]

    times = sorted({t["created_at"] for t in expected})
    from_, to = times[len(times) // 4], times[3 * len(times) // 4]
    in_range = [t for t in expected if from_ <= t["created_at"] < to]
    assert in_range and len(in_range) < len(expected)
    # The bounds may be given in any time zone: the same instants select the same rows.
    utc = ZoneInfo("UTC")
    assert all_pages(history, view_db, user, first=4, from_=from_.astimezone(utc), to=to) == in_range
    usage_in_range = [t for t in in_range if t["type"] == "USAGE"]
    assert all_pages(history, view_db, user, first=4, type="USAGE", from_=from_, to=to) == usage_in_range
    assert history.history(view_db, user, from_=to, to=from_) == ([], 0, None)


def test_cursor_paging_visits_every_row_once(ledger, view_db, users):
    drive(ledger, users, steps=50, seed=3)
    history = WalletHistory()
    ProjectionRunner(ledger, history, view_db).catch_up()
    user = users[1]
    expected_ids = [t["id"] for t in ledger_transactions(ledger, user)]

    for first in (1, 3, len(expected_ids), 500):
        ids = [t["id"] for t in all_pages(history, view_db, user, first=first)]
        assert ids == expected_ids
    items, total, cursor = history.history(view_db, user, first=len(expected_ids))
    assert (len(items), total, cursor) == (len(expected_ids), len(expected_ids), None)
    assert history.history(view_db, "nobody", first=10) == ([], 0, None)


@pytest.mark.parametrize(
    "arguments",
    [{"first": 0}, {"first": 501}, {"first": -3}, {"after": "not a cursor!"}, {"after": "eHl6"}, {"after": base64.urlsafe_b64encode(b"wt:5x").decode()}, {"type": "BONUS"}, {"from_": datetime(2025, 1, 1)}],
)
def test_history_refuses_bad_input(ledger, view_db, users, arguments):
    history = WalletHistory()
    ProjectionRunner(ledger, history, view_db)
    with pytest.raises(InvalidInput):
        history.history(view_db, users[0], **arguments)


def test_restart_and_crash_mid_stream_end_identical_to_a_straight_run(ledger, view_db, users):
    drive(ledger, users, steps=40, seed=4)
    copy = WalletHistory(prefix="copy_")
    stopped = ProjectionRunner(ledger, copy, view_db, batch_size=3)
    midway = stopped.head() // 2
    stopped.catch_up(until=midway)
    assert 0 < stopped.position() <= midway

    # The log grows while the projection is stopped; then a runner dies mid-batch.
    now = drive(ledger, users, steps=30, seed=5, now=START + timedelta(days=200))
    crashing = ProjectionRunner(ledger, CrashingHistory("copy_", crash_on=3), view_db, batch_size=5)
    before = crashing.position()
    with pytest.raises(Crash):
        crashing.catch_up()
    assert crashing.position() > before  # two batches committed, the third rolled back

    drive(ledger, users, steps=10, seed=6, now=now)
    ProjectionRunner(ledger, WalletHistory(prefix="copy_"), view_db, batch_size=7).catch_up()

    straight = WalletHistory()
    ProjectionRunner(ledger, straight, view_db).catch_up()
    assert dump(view_db, copy) == dump(view_db, straight)
    assert dump(view_db, straight)["transactions"]


def test_catch_up_again_applies_nothing(ledger, view_db, users):
    drive(ledger, users, steps=20, seed=7)
    history = WalletHistory()
    runner = ProjectionRunner(ledger, history, view_db, batch_size=8)
    assert runner.catch_up() > 0
    rows = dump(view_db, history)

    assert runner.catch_up() == 0
    assert ProjectionRunner(ledger, WalletHistory(), view_db).catch_up() == 0
    assert dump(view_db, history) == rows


def test_racing_runners_apply_each_event_once(ledger, view_db, users):
    drive(ledger, users, steps=40, seed=8)
    racers = [ProjectionRunner(ledger, WalletHistory(prefix="race_"), view_db, batch_size=2) for _ in range(3)]
    applied = [0] * len(racers)

    def race(index: int) -> None:
        applied[index] = racers[index].catch_up()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    straight = WalletHistory()
    assert sum(applied) == ProjectionRunner(ledger, straight, view_db).catch_up()
    assert dump(view_db, WalletHistory(prefix="race_")) == dump(view_db, straight)


def test_position_follows_ids_across_gaps(ledger, view_db, users):
    user = users[0]
    ledger.wallets.adjust_points(user, 100, "grant", now=START, actor="admin")
    # A concurrent writer's losing insert: on PostgreSQL it consumes a notification id.
    winner, loser = ledger.wallet(user), ledger.wallet(user)
    winner.credit(type="ADJUSTMENT", amount=5, at=START, description="first", expires_at=None)
    loser.credit(type="ADJUSTMENT", amount=7, at=START, description="second", expires_at=None)
    ledger.save(winner)
    with pytest.raises(RecordConflictError):
        ledger.save(loser)
    ledger.wallets.spend_points(user, service=None, amount=30, service_id="after-gap", now=START)

    history = WalletHistory()
    runner = ProjectionRunner(ledger, history, view_db, batch_size=1)
    assert runner.catch_up() == 5  # Opened, the grant, the winner's credit, the spend and its serviceId record
    assert runner.position() == runner.head()
    assert all_pages(history, view_db, user, first=2) == ledger_transactions(ledger, user)


def test_lots_table_finds_wallets_to_sweep(ledger, view_db, users):
    early, later, never = users
    day = timedelta(days=1)
    ledger.wallets.adjust_points(early, 100, "grant", now=START, actor="admin", expires_at=START + day)
    ledger.wallets.adjust_points(early, 50, "grant", now=START, actor="admin", expires_at=START + 10 * day)
    ledger.wallets.adjust_points(later, 70, "grant", now=START, actor="admin", expires_at=START + 3 * day)
    ledger.wallets.adjust_points(never, 30, "grant", now=START, actor="admin")
    ledger.wallets.spend_points(early, service=None, amount=60, service_id="s1", now=START)  # drawn from the lot expiring first
    history = WalletHistory()
    runner = ProjectionRunner(ledger, history, view_db)
    runner.catch_up()

    assert history.users_with_expired_lots(view_db, START) == []
    assert history.users_with_expired_lots(view_db, START + day) == [early]  # a lot is expired at its expiry
    assert history.users_with_expired_lots(view_db, START + 5 * day) == sorted([early, later])
    assert history.lots_expiring_between(view_db, START, START + 5 * day) == [
        (early, "lot-2", 40, START + day),
        (later, "lot-2", 70, START + 3 * day),
    ]

    for user in history.users_with_expired_lots(view_db, START + 5 * day):
        ledger.wallets.expire_wallet_points(user, START + 5 * day)
    runner.catch_up()
    assert history.users_with_expired_lots(view_db, START + 5 * day) == []
    assert history.users_with_expired_lots(view_db, START + 11 * day) == [early]
    assert history.lots_expiring_between(view_db, START, START + 20 * day) == [(early, "lot-3", 50, START + 10 * day)]
    expiry = all_pages(history, view_db, early, first=10, type="EXPIRATION")
    assert [(t["amount"], t["reference_id"]) for t in expiry] == [(-40, "lot-2")]


def test_background_follower_and_status(ledger, view_db, users):
    history = WalletHistory()
    runner = ProjectionRunner(ledger, history, view_db)
    drive(ledger, users, steps=10, seed=9)
    head = runner.head()
    assert status([runner]) == [{"name": "wallet_history", "position": 0, "headPosition": head, "lag": head}]

    follower = LogFollower(ledger, [runner], poll_interval=5)
    follower.start()
    try:
        assert runner.wait_until(head, timeout=60)
        ledger.wallets.adjust_points(users[0], 10, "late", now=START + timedelta(days=400), actor="admin")
        follower.notify()
        assert runner.wait_until(runner.head(), timeout=60)
    finally:
        follower.stop()
    head = runner.head()
    assert status([runner]) == [{"name": "wallet_history", "position": head, "headPosition": head, "lag": 0}]
    assert all_pages(history, view_db, users[0], first=50) == ledger_transactions(ledger, users[0])


class _CountedWrites:
    """The test's view database as the runners see it, counting the write transactions begun."""

    def __init__(self, view_db: ViewDatabase) -> None:
        self.inner, self.kind, self.writes = view_db, view_db.kind, 0

    def transaction(self, readonly: bool = False, durable: bool = True):
        self.writes += 0 if readonly else 1
        return self.inner.transaction(readonly, durable)

    def chose_to_abort(self, error: BaseException) -> bool:
        return self.inner.chose_to_abort(error)


def test_a_batch_goes_to_every_read_model_in_one_transaction(ledger, view_db, users) -> None:
    """The follower applies each batch to all the read models standing at its start in one view
    transaction (one commit, not one per read model), and each ends where applying it on its own
    would have left it: the same position and the same rows."""
    from projections.aggregates import AggregatesProjection

    drive(ledger, users, steps=12, seed=5)
    counted = _CountedWrites(view_db)
    runners = [ProjectionRunner(ledger, WalletHistory(), counted), ProjectionRunner(ledger, AggregatesProjection(), counted)]
    head = runners[0].head()
    counted.writes = 0
    follower = LogFollower(ledger, runners, batch_size=10**6)
    assert follower.catch_up(strict=True) == head
    assert counted.writes == 1
    assert [runner.position() for runner in runners] == [head, head]
    assert follower.catch_up(strict=True) == 0 and counted.writes == 1
    for user in users:
        assert all_pages(runners[0].current(), view_db, user, first=50) == ledger_transactions(ledger, user)
    with view_db.transaction(readonly=True) as cursor:
        rows = cursor.execute("SELECT count(*) AS n FROM ledger_aggregates").fetchone()["n"]
    assert rows == len({n.originator_id for n in ledger.recorder.select_notifications(start=1, limit=10**6)})


class _Flaky(WalletHistory):
    """The wallet history, failing its first `fails` batches (a bug, a table gone missing)."""

    fails = 0

    def apply(self, cursor, events) -> None:
        if _Flaky.fails > 0:
            _Flaky.fails -= 1
            raise RuntimeError("the read model's code failed on this batch")
        super().apply(cursor, events)


def test_the_follower_goes_on_with_the_others_while_one_read_model_fails(ledger, view_db, users) -> None:
    """One follower serves every read model of a process: a read model whose batches fail is
    paused and tried again, the others keep up meanwhile, and the failing one then catches up.
    A strict pass (the jobs') raises that failure instead of going on with stale tables."""
    from projections.aggregates import AggregatesProjection

    flaky = ProjectionRunner(ledger, _Flaky(), view_db)
    steady = ProjectionRunner(ledger, AggregatesProjection(), view_db)
    follower = LogFollower(ledger, [flaky, steady], poll_interval=0.02)
    drive(ledger, users, steps=5, seed=3)
    head = steady.head()

    _Flaky.fails = 2  # the batch for both read models in one transaction, then the flaky one's own
    with pytest.raises(RuntimeError, match="failed on this batch"):
        follower.catch_up(strict=True)
    assert flaky.position() == 0 and _Flaky.fails == 0

    _Flaky.fails = 10**9  # failing until released below
    follower.start()
    try:
        assert steady.wait_until(head, timeout=60)
        assert flaky.position() == 0 and _Flaky.fails < 10**9  # tried, failed, and held nobody up
        _Flaky.fails = 0  # fixed: the next try (within the 5 s longest pause) applies it
        assert flaky.wait_until(head, timeout=60)
    finally:
        follower.stop()
    assert all_pages(flaky.current(), view_db, users[0], first=50) == ledger_transactions(ledger, users[0])


def test_a_runner_set_up_while_a_follower_holds_its_row_survives_the_deadlock(ledger, view_db, database: Database) -> None:
    """A process starting beside running ones: its setup locks the read model's tables, then
    waits for the tracking row a follower holds while that follower writes those tables.
    PostgreSQL aborts the setup to break the deadlock; the runner sets itself up again."""
    if database.kind != "postgres":
        pytest.skip("SQLite serializes writers: no deadlock to break")
    from projections.aggregates import AggregatesProjection

    ProjectionRunner(ledger, AggregatesProjection(), view_db)  # the tables and the row exist
    holding, done = threading.Event(), threading.Event()
    follower_errors: list[BaseException] = []

    def follower() -> None:
        try:
            with view_db.transaction() as cursor:
                cursor.execute("UPDATE projection_tracking SET position = position WHERE name = 'aggregates'")
                holding.set()
                done.wait(0.5)  # the new runner's setup is now waiting for this row
                cursor.execute(
                    "INSERT INTO ledger_aggregates (aggregate_id, aggregate_type, created_position) VALUES ('x', 'T', 1)"
                )
        except BaseException as error:  # noqa: BLE001 (the test reports whichever side lost)
            follower_errors.append(error)

    thread = threading.Thread(target=follower)
    thread.start()
    assert holding.wait(10)
    starting = ViewDatabase.open(database)
    try:
        ProjectionRunner(ledger, AggregatesProjection(), starting)
    finally:
        done.set()
        thread.join(30)
        starting.close()
    assert follower_errors == []  # the setup, waiting first, was the one aborted, and it recovered
    with view_db.transaction() as cursor:
        assert cursor.execute("SELECT aggregate_type FROM ledger_aggregates WHERE aggregate_id = 'x'").fetchone()["aggregate_type"] == "T"


@pytest.mark.parametrize("caller", ["runner", "jobs"])
def test_a_batch_aborted_to_break_a_deadlock_with_a_starting_process_is_applied_again(
    ledger, view_db, database: Database, users, caller: str
) -> None:
    """The same deadlock the other way round: the starting process's setup locked the read
    model's tables first, the batch waits for them while holding the tracking row, and the
    setup then waits for that row. The batch waited first, so PostgreSQL aborts it; a direct
    catch_up must apply it again, not fail: the runner's own, and the one the jobs use (the
    process's follower, strict)."""
    if database.kind != "postgres":
        pytest.skip("SQLite serializes writers: no deadlock to break")
    from projections.aggregates import AggregatesProjection

    runner = ProjectionRunner(ledger, AggregatesProjection(), view_db)
    runner.catch_up()
    ledger.wallets.adjust_points(users[0], 100, "goodwill", now=START, actor="admin")
    head = runner.head()
    outcome: list[object] = []

    direct = runner.catch_up if caller == "runner" else lambda: LogFollower(ledger, [runner]).catch_up(strict=True)

    def catch_up() -> None:
        try:
            outcome.append(direct())
        except BaseException as error:  # noqa: BLE001 (reported below)
            outcome.append(error)

    starting = ViewDatabase.open(database)
    thread = threading.Thread(target=catch_up)
    try:
        with starting.transaction() as setup:
            AggregatesProjection().create_tables(setup)  # CREATE INDEX ... locks the table
            thread.start()
            waiting = 0
            for _ in range(500):
                with view_db.transaction(readonly=True) as look:
                    waiting = look.execute(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%ledger_aggregates%'"
                    ).fetchone()["n"]
                if waiting:
                    break
                time.sleep(0.01)
            assert waiting == 1, "the batch never waited for the setup's table lock"
            setup.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                ("aggregates",),
            )
        thread.join(30)
    finally:
        starting.close()
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    assert runner.position() == head
    with view_db.transaction() as cursor:
        row = cursor.execute(
            "SELECT aggregate_type FROM ledger_aggregates WHERE user_id = ? ORDER BY created_position", (users[0],)
        ).fetchone()
    assert row is not None
