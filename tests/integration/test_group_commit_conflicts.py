"""Group commit against another process's write, on both databases (domain/group_commit.py).

Two ledgers open the same database, as two API processes do. One writes a wallet; the
other, holding that wallet as it was, writes a batch of 16 commands, one of them on the
stale wallet. PostgreSQL names the version it found recorded, so only that command fails
and the other 15 are written together at once; SQLite names none, so the batch is split in
halves until the stale command is alone. Either way every other command's points land
once and the stale command's do not.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from eventsourcing.persistence import IntegrityError

from domain.group_commit import GroupCommitter, VersionConflict, _Entry
from domain.wallet import Wallet
from subledger.core import Built
from tests.integration.cores import opened_cores

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def two_processes(database_url: str) -> Iterator[tuple[Built, Built]]:
    with opened_cores(database_url, 2) as (first, second):
        yield first, second


def reward(wallet: Wallet, amount: int) -> None:
    wallet.credit(type="REWARD", amount=amount, at=T0, description="test", expires_at=T0 + timedelta(days=365),
                  reference_type="activity", reference_id="test")


def test_a_batch_with_one_stale_command_writes_the_others_and_fails_only_that_one(
    two_processes: tuple[Built, Built], database_url: str
) -> None:
    ours, theirs = (built.ledger for built in two_processes)
    wallets = [Wallet(user_id=f"gc-{i}", at=T0) for i in range(16)]
    ours.save(*wallets)
    stale = ours.repository.get(wallets[5].id)
    meanwhile = theirs.repository.get(wallets[5].id)
    reward(meanwhile, 1)
    theirs.save(meanwhile)  # the other process wrote wallet 5 first
    wallets[5] = stale
    for wallet in wallets:
        reward(wallet, 10)

    transactions: list[int] = []

    def save(*aggregates: Wallet) -> None:
        transactions.append(len(aggregates))
        ours.save(*aggregates)

    batch = [_Entry([wallet]) for wallet in wallets]
    committer = GroupCommitter(save)
    committer._write(batch)

    assert all(entry.done.is_set() for entry in batch)
    assert (committer.transactions, committer.commands) == (len(transactions), 15)
    assert [i for i, entry in enumerate(batch) if entry.error is not None] == [5]
    assert isinstance(batch[5].error, IntegrityError)  # a conflict the command retries on fresh state
    if database_url.startswith("postgresql"):
        error = batch[5].error
        assert isinstance(error, VersionConflict)
        assert (error.originator_id, error.originator_version) == (wallets[5].id, 2)
        assert transactions == [16, 15]
    else:
        # Halves in order, the failing one split again: 0-15, 0-7, 0-3, 4-7, 4-5, 4, 5, 6-7, 8-15.
        assert transactions == [16, 8, 4, 4, 2, 1, 1, 2, 8]
    # Read back by a third party: the other process's ledger.
    balances = {w.user_id: theirs.repository.get(w.id).usable_balance(T0) for w in wallets}
    assert balances == {f"gc-{i}": 1 if i == 5 else 10 for i in range(16)}
    assert [theirs.repository.get(w.id).version for w in wallets] == [2] * 16
