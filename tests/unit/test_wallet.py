"""Wallet rules without I/O: lots, spend order, expiry, and money invariants (hypothesis)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import AlreadyClaimed, InsufficientPoints, InvalidInput
from domain.wallet import Wallet

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def replayed(wallet: Wallet) -> Wallet:
    """The wallet rebuilt from its own events, as the ledger would load it."""
    events = wallet.collect_events()
    copy = None
    for event in events:
        copy = event.mutate(copy)
    return copy


def test_spend_takes_the_earliest_expiring_lot_then_the_oldest() -> None:
    wallet = Wallet(user_id="u", at=T0)
    wallet.credit(type="ADJUSTMENT", amount=100, at=T0, description="no expiry", expires_at=None)
    wallet.credit(type="REWARD", amount=100, at=T0, description="late", expires_at=T0 + timedelta(days=30))
    wallet.credit(type="REWARD", amount=100, at=T0 + timedelta(hours=1), description="early", expires_at=T0 + timedelta(days=10))
    wallet.credit(type="REWARD", amount=100, at=T0 + timedelta(hours=2), description="early too", expires_at=T0 + timedelta(days=10))
    wallet.debit(type="USAGE", amount=150, at=T0 + timedelta(hours=3), description="spend")
    remaining = {lot["id"]: lot["remaining"] for lot in wallet.lots.values()}
    assert remaining == {"lot-2": 100, "lot-3": 100, "lot-5": 50}  # the emptied lot-4 is gone


def test_expired_lots_cannot_be_spent_and_are_swept_once() -> None:
    wallet = Wallet(user_id="u", at=T0)
    wallet.credit(type="REWARD", amount=500, at=T0, description="r", expires_at=T0 + timedelta(days=1))
    later = T0 + timedelta(days=2)
    assert wallet.usable_balance(later) == 0 and wallet.total_balance == 500
    with pytest.raises(InsufficientPoints) as refused:
        wallet.debit(type="USAGE", amount=1, at=later, description="s")
    assert refused.value.extensions == {"available": 0, "required": 1}
    assert wallet.expire_due_lots(later) == 500
    assert wallet.expire_due_lots(later) == 0
    assert wallet.total_balance == 0 and wallet.lifetime_spent == 0


def test_rewards_once_per_day_and_once_per_user() -> None:
    wallet = Wallet(user_id="u", at=T0)
    day = T0.date()
    wallet.reward("daily_login", 10, True, False, day, T0)
    with pytest.raises(AlreadyClaimed):
        wallet.reward("daily_login", 10, True, False, day, T0)
    wallet.reward("daily_login", 10, True, False, day + timedelta(days=1), T0 + timedelta(days=1))
    wallet.reward("first_review", 100, False, True, day, T0)
    with pytest.raises(AlreadyClaimed):
        wallet.reward("first_review", 100, False, True, day + timedelta(days=9), T0 + timedelta(days=9))
    assert replayed(wallet).total_balance == 120


@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_amounts_must_be_positive_whole_numbers(amount) -> None:
    wallet = Wallet(user_id="u", at=T0)
    with pytest.raises(InvalidInput):
        wallet.credit(type="ADJUSTMENT", amount=amount, at=T0, description="x", expires_at=None)
    assert wallet.version == 1


operations = st.lists(
    st.tuples(
        st.sampled_from(["credit", "debit", "expire"]),
        st.integers(min_value=1, max_value=1000),  # amount
        st.integers(min_value=0, max_value=400),  # days from T0 the operation happens
        st.one_of(st.none(), st.integers(min_value=1, max_value=400)),  # lot lifetime in days
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_points_are_conserved_and_never_negative(ops) -> None:
    wallet = Wallet(user_id="u", at=T0)
    credited = spent = expired = 0
    for kind, amount, day, lifetime in sorted(ops, key=lambda op: op[2]):
        at = T0 + timedelta(days=day)
        if kind == "credit":
            expires = at + timedelta(days=lifetime) if lifetime else None
            wallet.credit(type="REWARD", amount=amount, at=at, description="c", expires_at=expires)
            credited += amount
        elif kind == "debit":
            usable = wallet.usable_balance(at)
            try:
                wallet.debit(type="USAGE", amount=amount, at=at, description="d")
                spent += amount
            except InsufficientPoints:
                assert amount > usable
        else:
            expired += wallet.expire_due_lots(at)
        assert all(lot["remaining"] >= 0 for lot in wallet.lots.values())
        assert wallet.total_balance == credited - spent - expired >= 0
    assert (wallet.lifetime_earned, wallet.lifetime_spent) == (credited, spent)
    copy = replayed(wallet)
    assert copy.lots == wallet.lots and copy.total_balance == wallet.total_balance
