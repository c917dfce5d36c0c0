"""Loads look in the snapshot table only for the types the ledger snapshots (wallets and
subscriptions), on both databases (domain/repository.py): a customer, never snapshotted, is
rebuilt from its events without the query, and a wallet with a snapshot still starts from it.
The snapshot store is the real one, watched by a wrapper that passes every call on.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import pytest

from domain.customer import Customer
from domain.ids import customer_id, wallet_id
from domain.wallet import Wallet
from subledger.core import Built
from tests.integration.cores import opened_cores

NOW = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def built(database_url: str) -> Iterator[Built]:
    with opened_cores(database_url) as (built,):
        yield built


def test_only_snapshotted_types_look_for_a_snapshot(built: Built) -> None:
    ledger = built.ledger
    ledger.save(Customer(user_id="probe", at=NOW))
    for _ in range(3):
        ledger.wallets.adjust_points("probe", 10, "test", now=NOW, actor="test")
    ledger.take_snapshot(wallet_id("probe"))  # eventsourcing's own snapshot of the wallet at version 3
    ledger.wallets.adjust_points("probe", 10, "test", now=NOW, actor="test")

    store = ledger.repository.snapshot_store
    looked_for: list[UUID] = []
    real_get = store.get

    def watched_get(originator_id: UUID, **kwargs: Any) -> Any:
        looked_for.append(originator_id)
        return real_get(originator_id, **kwargs)

    store.get = watched_get  # type: ignore[method-assign]
    for aggregate_id in (customer_id("probe"), wallet_id("probe")):
        with contextlib.suppress(KeyError):  # the next load misses the cache
            ledger.repository.cache.get(aggregate_id, evict=True)

    customer = ledger.load(Customer, customer_id("probe"))
    wallet = ledger.load(Wallet, wallet_id("probe"))

    assert looked_for == [wallet_id("probe")]
    assert customer is not None and customer.user_id == "probe" and customer.version == 1
    assert wallet is not None and wallet.version == 5 and wallet.usable_balance(NOW) == 40
