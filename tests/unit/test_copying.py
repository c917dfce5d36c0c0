"""domain/copying.py: an aggregate's deep copy is equal, independent of the original, and
keeps shared references shared, as `copy.deepcopy` would."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from domain.clock import TestClockState as ClockState
from domain.copying import IMMUTABLE, copy_aggregate, copy_value
from domain.customer import Customer
from domain.idempotency import IdempotencyRecord
from domain.payments.payment import Payment
from domain.promo import PromoCode
from domain.service_spend import ServiceSpend
from domain.subscription import Subscription
from domain.wallet import Wallet

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class Box:
    items: list[int] = field(default_factory=list)


def state(aggregate: object) -> dict:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_every_aggregate_class_copies_through_copy_aggregate() -> None:
    for cls in (Customer, IdempotencyRecord, Payment, PromoCode, ServiceSpend, Subscription, ClockState, Wallet):
        assert cls.__deepcopy__ is copy_aggregate, cls


def test_a_wallet_copy_is_equal_and_independent() -> None:
    wallet = Wallet(user_id="u", at=T0)
    wallet.credit(type="REWARD", amount=100, at=T0, description="r", expires_at=T0 + timedelta(days=10))
    wallet.credit(type="ADJUSTMENT", amount=50, at=T0, description="a", expires_at=None)
    wallet.collect_events()
    copied = copy.deepcopy(wallet)
    assert type(copied) is Wallet and copied is not wallet
    assert state(copied) == state(wallet)
    copied.debit(type="USAGE", amount=120, at=T0 + timedelta(hours=1), description="spend")
    assert wallet.total_balance == 150 and copied.total_balance == 30
    assert wallet.version == 3 and copied.version == 4
    for lot_id, lot in wallet.lots.items():
        assert lot is not copied.lots.get(lot_id)  # nested dicts are copies, not shared


def test_a_customer_copy_does_not_share_its_payment_methods() -> None:
    customer = Customer(user_id="u", at=T0)
    customer.add_payment_method("pm_1", "SANDBOX", "bk_1", "card", None, T0)
    copied = copy.deepcopy(customer)
    assert state(copied) == state(customer)
    copied.payment_methods["pm_1"]["active"] = False
    assert customer.payment_methods["pm_1"]["active"] is True


def test_immutable_values_are_shared_and_everything_else_copied() -> None:
    when, ident = T0, uuid4()
    box = Box([1, 2])
    nested = {"at": when, "id": ident, "list": [1, {"x": when}], "tuple": ([1],), "set": {1, 2}, "box": box}
    copied = copy_value(nested, {})
    assert copied == nested
    assert copied["at"] is when and copied["id"] is ident
    assert copied["list"] is not nested["list"] and copied["list"][1] is not nested["list"][1]
    assert copied["tuple"][0] is not nested["tuple"][0]  # tuples and the rest: deepcopy's own rules
    assert copied["box"] is not box and copied["box"].items is not box.items
    assert type(when) in IMMUTABLE and list not in IMMUTABLE


def test_shared_references_stay_shared_as_with_deepcopy() -> None:
    shared = {"points": 1}
    wallet = Wallet(user_id="u", at=T0)
    wallet.extra = [shared, shared]  # two references to one dict
    wallet.same = shared
    copied = copy.deepcopy(wallet)
    assert copied.extra[0] is copied.extra[1] is copied.same
    assert copied.same is not shared
    cycle: list = []
    cycle.append(cycle)
    looped = copy_value(cycle, {})
    assert looped[0] is looped and looped is not cycle
