"""Derived ids: the fast transaction id is exactly uuid5's."""
from __future__ import annotations

import random
from uuid import UUID, uuid4, uuid5

from domain.ids import transaction_id, uuid5_text


def test_transaction_id_is_uuid5_of_the_wallet_and_version() -> None:
    rng = random.Random(5)
    for _ in range(5000):
        wallet, version = UUID(int=rng.getrandbits(128), version=4), rng.randint(1, 10**9)
        assert transaction_id(wallet, version) == str(uuid5(wallet, str(version)))
    wallet = uuid4()
    assert UUID(transaction_id(wallet, 1)).version == 5


def test_uuid5_text_is_uuid5_for_any_name() -> None:
    rng = random.Random(6)
    alphabet = "abc:-_0123456789가나é"
    for _ in range(5000):
        namespace = UUID(int=rng.getrandbits(128), version=4)
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert uuid5_text(namespace, name) == str(uuid5(namespace, name))
