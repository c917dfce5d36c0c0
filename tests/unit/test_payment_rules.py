"""The payment and refund state machines, and the pure rules around them (no I/O)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict, InvalidInput
from domain.payments.payment import Payment, RefundStatus
from domain.payments.reconcile import Finding, compare
from domain.payments.refunds import LookupVerdict, points_refund_quote, refund_verdict
from domain.ports import ChargeResult, ChargeStatus
from domain.wallet import LOT_LIFETIME, Wallet

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


def paid(amount: int = 10000) -> Payment:
    payment = Payment(
        order_id="o-1", order_name="x", user_id="u", provider="SANDBOX", kind="SUBSCRIPTION", amount=amount,
        payment_method_id="pm", subscription_id=None, attempt=1, purpose={}, at=T0,
    )
    payment.succeed("pk", T0, T0)
    return payment


def replayed(payment: Payment) -> Payment:
    copy = None
    for event in payment.collect_events():
        copy = event.mutate(copy)
    return copy


def test_a_refund_reserves_its_amount_until_it_settles() -> None:
    payment = paid()
    refund = payment.request_refund(3000, "asked", T0)
    assert (refund.key, refund.status, payment.refundable, payment.refunded_amount) == ("o-1-rf1", RefundStatus.PENDING, 7000, 0)
    with pytest.raises(Conflict):  # one refund in flight per payment
        payment.request_refund(1000, "again", T0)
    assert payment.settle_refund(refund.id, True, T0)
    assert not payment.settle_refund(refund.id, False, T0)  # settled once
    assert (payment.status, payment.refunded_amount, payment.refundable) == ("PARTIALLY_REFUNDED", 3000, 7000)
    second = payment.request_refund(7000, "rest", T0)
    assert second.key == "o-1-rf2"
    payment.settle_refund(second.id, False, T0, "FAILED_REFUND_PROCESS", "no")
    assert (payment.refundable, payment.refund(second.id).status) == (7000, RefundStatus.FAILED)
    with pytest.raises(InvalidInput):
        payment.request_refund(7001, "too much", T0)
    third = payment.request_refund(7000, "rest", T0)
    payment.settle_refund(third.id, True, T0)
    assert (payment.status, payment.refundable) == ("REFUNDED", 0)
    with pytest.raises(Conflict):
        payment.request_refund(1, "nothing left", T0)
    assert replayed(payment).__dict__ == payment.__dict__


@given(st.lists(st.tuples(st.integers(1, 5000), st.booleans()), max_size=12))
def test_settled_refunds_never_exceed_the_payment(attempts: list[tuple[int, bool]]) -> None:
    payment = paid(10000)
    for amount, succeeds in attempts:
        try:
            refund = payment.request_refund(amount, "r", T0)
        except (Conflict, InvalidInput):
            continue
        payment.settle_refund(refund.id, succeeds, T0)
    assert 0 <= payment.refunded_amount <= payment.amount
    assert payment.refunded_amount == sum(r.amount for r in payment.refunds if r.status == RefundStatus.SUCCEEDED)


def test_a_lookup_judges_the_refund_in_flight_by_what_the_gateway_cancelled() -> None:
    payment = paid()
    done = payment.request_refund(2000, "a", T0)
    payment.settle_refund(done.id, True, T0)
    payment.request_refund(3000, "b", T0)
    assert refund_verdict(payment, (2000, 3000)) == LookupVerdict.DONE
    assert refund_verdict(payment, (2000,)) == LookupVerdict.ABSENT
    assert refund_verdict(payment, (2000, 1000)) == LookupVerdict.DISAGREES


def test_points_refund_quote_is_the_unspent_share_rounded_down() -> None:
    payment = paid(5000)
    assert points_refund_quote(payment, 5500, 4400) == 4000
    assert points_refund_quote(payment, 5500, 1) == 0
    assert points_refund_quote(payment, 5500, 0) == 0


def test_a_refused_refund_gives_the_points_back_to_their_lot() -> None:
    wallet = Wallet(user_id="u", at=T0)
    wallet.credit(type="PURCHASE", amount=5500, at=T0, description="p", expires_at=T0 + LOT_LIFETIME,
                  reference_type="payment", reference_id="pay", lot_id="purchase-pay")
    wallet.debit(type="USAGE", amount=500, at=T0, description="spent")
    assert wallet.take_back_lot("purchase-pay", T0, "refund", "pay") == 5000
    assert wallet.lots == {}
    wallet.restore_lot("purchase-pay", 5000, T0 + timedelta(hours=1), "refused", "pay")
    lot = wallet.lots["purchase-pay"]
    assert (lot["amount"], lot["remaining"], lot["expires_at"]) == (5500, 5000, T0 + LOT_LIFETIME)
    assert (wallet.total_balance, wallet.lifetime_earned, wallet.taken_back) == (5000, 5500, {})
    draws = [e.draws for e in wallet.collect_events() if isinstance(e, Wallet.Debited)]
    assert draws == [[["purchase-pay", 500, T0 + LOT_LIFETIME]], [["purchase-pay", 5000, T0 + LOT_LIFETIME]]]


def found(status: str, amount: int = 10000, cancels: tuple[int, ...] = ()) -> ChargeResult:
    answer = ChargeStatus.APPROVED if status in ("DONE", "PARTIAL_CANCELED") else ChargeStatus.DECLINED
    return ChargeResult(answer, "o-1", amount=amount, gateway_status=status, cancels=cancels)


def test_reconciliation_compares_both_sides_to_the_won() -> None:
    later = T0 + timedelta(hours=1)
    payment = paid()
    assert compare(payment, found("DONE"), later) == []
    assert compare(payment, None, later) == [Finding.SUCCEEDED_NOT_CHARGED]
    assert compare(payment, found("DONE", 9000), later) == [Finding.AMOUNT_DIFFERS]
    assert compare(payment, found("PARTIAL_CANCELED", cancels=(1000,)), later) == [Finding.REFUNDS_DIFFER]
    refund = payment.request_refund(1000, "r", later)
    # In flight: the gateway may or may not show it yet.
    assert compare(payment, found("DONE"), later) == []
    assert compare(payment, found("PARTIAL_CANCELED", cancels=(1000,)), later) == []
    assert compare(payment, found("DONE"), later + timedelta(minutes=5)) == [Finding.STALE_PENDING_REFUND]
    payment.settle_refund(refund.id, True, later)
    assert compare(payment, found("PARTIAL_CANCELED", cancels=(1000,)), later) == []
    failed = Payment(
        order_id="o-2", order_name="x", user_id="u", provider="SANDBOX", kind="POINTS", amount=1000,
        payment_method_id="pm", subscription_id=None, attempt=1, purpose={}, at=T0,
    )
    assert compare(failed, found("DONE", 1000), T0) == []  # PENDING and fresh: nothing to say yet
    assert compare(failed, found("DONE", 1000), later) == [Finding.STALE_PENDING_CHARGE]
    failed.fail("INSUFFICIENT_FUNDS", None, None, T0)
    assert compare(failed, found("DONE", 1000), later) == [Finding.CHARGED_NOT_SUCCEEDED]
    assert compare(failed, found("ABORTED", 1000), later) == []
