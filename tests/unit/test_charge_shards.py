"""How a charge run is split over processes (workers/charge_processes.py): every
subscription falls in exactly one shard, small runs are not split, and the split needs
PostgreSQL."""
from __future__ import annotations

import uuid
from collections import Counter

import pytest
from pydantic import ValidationError

from subledger.settings import Settings, configuration_errors
from workers.charge_processes import MIN_DUE_PER_PROCESS, WHOLE, Shard, shards_for


def test_every_subscription_is_in_exactly_one_shard_and_the_shards_are_even() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3000)] + ["sub-1", "sub-2", "not a uuid"]
    for count in (2, 3, 4):
        owners = Counter(index for sub in ids for index in range(count) if Shard(index, count).owns(sub))
        assert sum(owners.values()) == len(ids), "an id owned by no shard or by two"
        assert min(owners.values()) > len(ids) / count * 0.85, owners
    assert all(WHOLE.owns(sub) for sub in ids)
    # The same id lands in the same shard in every process (CRC-32, not Python's salted hash).
    assert [Shard(i, 3).owns("4b0c8a3e-0000-4000-8000-000000000000") for i in range(3)] == [False, True, False]


def test_a_run_is_split_only_when_every_process_gets_enough_charges() -> None:
    assert shards_for(1, 100_000) == 1
    assert shards_for(2, 2 * MIN_DUE_PER_PROCESS - 1) == 1
    assert shards_for(2, 2 * MIN_DUE_PER_PROCESS) == 2
    assert shards_for(4, 3 * MIN_DUE_PER_PROCESS) == 3
    assert shards_for(4, 0) == 1


def test_several_charge_processes_are_refused_on_sqlite_in_one_line() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///:memory:", charge_processes=2)
    lines = configuration_errors(refused.value)
    assert len(lines) == 1 and "SUBLEDGER_CHARGE_PROCESSES" in lines[0] and "PostgreSQL" in lines[0], lines
    with pytest.raises(ValidationError):
        Settings(database_url="postgresql://u:p@localhost/db", charge_processes=0)
    assert Settings(database_url="postgresql://u:p@localhost/db", charge_processes=2).charge_processes == 2
