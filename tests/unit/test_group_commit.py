"""Group commit: a batch that conflicts is split in halves until the conflicting command
is alone; every other command of the batch is written (domain/group_commit.py)."""
from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.persistence import IntegrityError

from domain.catalog import default_catalog
from domain.group_commit import GroupCommitter, VersionConflict, _Entry
from domain.ledger import Ledger
from domain.wallet import Wallet

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"))
    yield ledger
    ledger.close()


def write(ledger: Ledger, wallets: list[Wallet]) -> tuple[list[_Entry], list[int]]:
    """One command per wallet, written as one batch; (the entries, the size of each transaction)."""
    transactions: list[int] = []

    def save(*aggregates: Wallet) -> None:
        transactions.append(len(aggregates))
        ledger.save(*aggregates)

    batch = [_Entry([wallet]) for wallet in wallets]
    GroupCommitter(save)._write(batch)
    return batch, transactions


def reward(wallet: Wallet, amount: int) -> None:
    wallet.credit(type="REWARD", amount=amount, at=T0, description="test", expires_at=T0 + timedelta(days=365),
                  reference_type="activity", reference_id="test")


def test_one_conflict_in_a_batch_of_16_costs_a_few_transactions_and_only_its_command_fails(ledger: Ledger) -> None:
    wallets = [Wallet(user_id=f"gc-{i}", at=T0) for i in range(16)]
    ledger.save(*wallets)
    stale = ledger.repository.get(wallets[5].id)
    other_writer = ledger.repository.get(wallets[5].id)
    reward(other_writer, 1)
    ledger.save(other_writer)  # another process wrote wallet 5 meanwhile
    wallets[5] = stale
    for wallet in wallets:
        reward(wallet, 10)

    batch, transactions = write(ledger, wallets)

    assert all(entry.done.is_set() for entry in batch)
    assert isinstance(batch[5].error, IntegrityError)
    assert [i for i, entry in enumerate(batch) if entry.error is not None] == [5]
    # Halves in order, the failing one split again: 0-15, 0-7, 0-3, 4-7, 4-5, 4, 5, 6-7,
    # 8-15. Nine transactions, where each command alone took 1 + 16.
    assert transactions == [16, 8, 4, 4, 2, 1, 1, 2, 8]
    balances = {w.user_id: ledger.repository.get(w.id).usable_balance(T0) for w in wallets}
    assert balances == {f"gc-{i}": 1 if i == 5 else 10 for i in range(16)}


def test_a_batch_without_conflict_is_one_transaction(ledger: Ledger) -> None:
    batch, transactions = write(ledger, [Wallet(user_id=f"ok-{i}", at=T0) for i in range(5)])
    assert transactions == [5] and all(e.error is None and e.done.is_set() for e in batch)


def test_a_version_conflict_survives_pickling() -> None:
    # A charge process hands its errors to the worker pickled (workers/charge_processes.py).
    aggregate = uuid4()
    copy = pickle.loads(pickle.dumps(VersionConflict("conflict", aggregate, 7)))
    assert isinstance(copy, VersionConflict) and isinstance(copy, IntegrityError)
    assert (str(copy), copy.originator_id, copy.originator_version) == ("conflict", aggregate, 7)
