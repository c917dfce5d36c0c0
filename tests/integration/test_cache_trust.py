"""A command's first attempt decides on the aggregate cache as it stands (domain/cache_trust.py).

Two ledgers open the same database, as two API processes do, each with its own aggregate
cache. One caches a wallet; the other changes it. Whatever the first then decides on its old
copy must end as if it had read the database first: a refusal decided on an old balance is
decided again, a save on an old version conflicts and is decided again, and an aggregate only
read is checked after the decision. On both databases.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from domain.errors import InsufficientPoints
from domain.ids import wallet_id
from domain.ledger import Ledger
from tests.integration.cores import opened_cores

NOW = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    with opened_cores(database_url, 2) as (first, second):
        yield first.ledger, second.ledger


def credit(ledger: Ledger, user: str, amount: int) -> None:
    ledger.wallets.adjust_points(user, amount, "test", now=NOW, actor="test")


def spend(ledger: Ledger, user: str, amount: int, service_id: str) -> dict[str, Any]:
    return ledger.wallets.spend_points(user, service=None, amount=amount, service_id=service_id, now=NOW)


def left_behind(two: tuple[Ledger, Ledger], user: str) -> tuple[Ledger, Ledger]:
    """Ours caches the user's wallet at 100 points; theirs then credits 50 (150 in the database)."""
    ours, theirs = two
    credit(ours, user, 100)
    credit(theirs, user, 50)
    return ours, theirs


def add(wallet: Any, amount: int) -> None:
    """Credit `amount` to a wallet a test's own command body holds."""
    wallet.credit(type="ADJUSTMENT", amount=amount, at=NOW, description="test", reference_type="adjustment",
                  reference_id="test", expires_at=None)


def balance(ledger: Ledger, user: str) -> int:
    """The wallet as the database holds it (a load with eventsourcing's fast-forward)."""
    wallet = ledger.wallet(user)
    assert wallet is not None
    return wallet.total_balance


class CountedReads:
    """Counts the recorder's event reads of one aggregate (the fast-forward's query among them)."""

    def __init__(self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, aggregate_id: Any) -> None:
        self.count = 0
        recorder = ledger.repository.event_store.recorder
        read = recorder.select_events

        def counted(originator_id: Any, *args: Any, **kwargs: Any) -> Any:
            if originator_id == aggregate_id:
                self.count += 1
            return read(originator_id, *args, **kwargs)

        monkeypatch.setattr(recorder, "select_events", counted)


def test_a_command_on_a_cached_aggregate_reads_none_of_its_events_first(
    two: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = two
    credit(ours, "cached", 1_000)  # the saved wallet goes into our cache
    reads = CountedReads(ours, monkeypatch, wallet_id("cached"))
    assert spend(ours, "cached", 100, "s1")["remaining_balance"] == 900
    assert reads.count == 0
    assert balance(ours, "cached") == 900  # a plain load still asks the database


def test_a_refusal_decided_on_an_old_balance_is_decided_again(two: tuple[Ledger, Ledger]) -> None:
    ours, theirs = two
    credit(ours, "refused", 100)
    credit(theirs, "refused", 1_000)  # we still hold the wallet at 100
    assert spend(ours, "refused", 500, "s1")["remaining_balance"] == 600
    assert balance(theirs, "refused") == 600
    assert wallet_id("refused") in ours.repository.contested
    with pytest.raises(InsufficientPoints):  # a refusal on the database's balance still stands
        spend(ours, "refused", 601, "s2")
    assert balance(theirs, "refused") == 600


def test_a_save_on_an_old_version_conflicts_and_is_decided_again(
    two: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = two
    credit(ours, "raced", 1_000)
    assert spend(theirs, "raced", 100, "theirs")["remaining_balance"] == 900
    assert spend(ours, "raced", 300, "ours")["remaining_balance"] == 600
    assert balance(theirs, "raced") == 600
    events = list(theirs.repository.event_store.get(wallet_id("raced")))
    assert [event.originator_version for event in events] == [1, 2, 3, 4]  # opened, credited, their spend, ours
    # Found stale once, the wallet is loaded with the fast-forward again for a while.
    assert wallet_id("raced") in ours.repository.contested
    assert wallet_id("raced") not in theirs.repository.contested
    reads = CountedReads(ours, monkeypatch, wallet_id("raced"))
    spend(ours, "raced", 1, "again")
    assert reads.count == 1


def test_an_aggregate_only_read_is_checked_after_the_decision(two: tuple[Ledger, Ledger]) -> None:
    ours, theirs = left_behind(two, "read")

    def copy_balance() -> tuple[int, list[Any]]:
        read = ours.wallet("read")
        assert read is not None
        target = ours.wallet_or_new("written", NOW)
        add(target, read.total_balance)
        return read.total_balance, [target]

    assert ours.run(copy_balance, lock=[wallet_id("written")]) == 150
    assert balance(theirs, "written") == 150


def test_a_copy_read_as_it_stood_is_checked_when_a_fresher_copy_of_it_is_saved(two: tuple[Ledger, Ledger]) -> None:
    ours, theirs = left_behind(two, "copies")

    def double_what_was_read() -> tuple[int, list[Any]]:
        read = ours.wallet("copies")
        with ours.repository.trusting_cache(False):
            fresh = ours.wallet("copies")
        assert read is not None and fresh is not None
        add(fresh, read.total_balance)
        return read.total_balance, [fresh]

    # The save writes the version after the fresh copy's, which vouches for that copy, not the old one.
    assert ours.run(double_what_was_read, lock=[wallet_id("copies")]) == 150
    assert balance(theirs, "copies") == 300


def test_a_command_that_does_not_trust_the_cache_loads_fresh_inside_one_that_does(
    two: tuple[Ledger, Ledger],
) -> None:
    """A command's retry (or a command run from inside another's first attempt) fast-forwards."""
    ours, theirs = left_behind(two, "nested")
    with ours.repository.trusting_cache() as outer:
        with ours.repository.trusting_cache(False) as inner:
            fresh = ours.wallet("nested")
        assert fresh is not None and fresh.total_balance == 150
        assert inner == {} and outer == {}
        trusted = ours.wallet("nested")  # the fast-forward above brought the cached copy along
        assert trusted is not None and trusted.total_balance == 150
        assert outer == {wallet_id("nested"): trusted.version}


def test_two_ledgers_spending_from_the_same_wallets_in_threads_lose_and_double_nothing(
    two: tuple[Ledger, Ledger],
) -> None:
    users = [f"shared-{i}" for i in range(3)]
    for user in users:
        credit(two[0], user, 100_000)
    for ledger in two:  # both caches hold every wallet
        for user in users:
            balance(ledger, user)
    spent = [0] * 8
    errors: list[BaseException] = []

    def spender(index: int) -> None:
        ledger = two[index % 2]
        try:
            for k in range(25):
                amount = 1 + (index * 25 + k) % 7
                spend(ledger, users[(index + k) % 3], amount, f"t{index}-{k}")
                spent[index] += amount
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=spender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(balance(two[1], user) for user in users) == 300_000 - sum(spent)
    assert sum(balance(two[0], user) for user in users) == 300_000 - sum(spent)
    usages = sum(
        1
        for user in users
        for event in two[1].repository.event_store.get(wallet_id(user))
        if type(event).__name__ == "Debited"
    )
    assert usages == 200
