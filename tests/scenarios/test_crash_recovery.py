"""A renewal interrupted between recording its payment and settling it: no second
attempt while it is PENDING, and the settle job records what the gateway did (SPEC §3, §5)."""
from __future__ import annotations

import asyncio

from domain.ports import ChargeResult, ChargeStatus, DeclineCode
from tests.api.conftest import Api
from tests.scenarios.helpers import advance, at, seoul, subscribe, subscription


def renewal_left_pending(api: Api, user: str, *, charged: bool) -> tuple[dict, str]:
    """The 00:00 run of 2026-04-01 recorded the renewal PENDING, then its process died
    (after the gateway charged, or before it was called)."""
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    advance(api, seoul(2026, 3, 31, 23))
    ledger = api.built.ledger
    outcome, payment = ledger.subscriptions.begin_period_charge(sub["id"], seoul(2026, 4, 1))
    assert outcome == "charge" and payment.status == "PENDING"
    if charged:
        card = ledger.customers.payment_method(user, method)
        result = asyncio.run(
            api.built.gateways["SANDBOX"].charge(card["billing_key"], card["customer_key"], payment.amount, payment.order_id, "x")
        )
        assert result.status == ChargeStatus.APPROVED
    return sub, payment.order_id


def test_no_new_attempt_while_pending_and_the_charge_made_is_settled_once(api: Api, user: str) -> None:
    sub, order_id = renewal_left_pending(api, user, charged=True)
    advance(api, seoul(2026, 4, 1, 0, 30))  # its own run: too fresh to look up, and in flight
    sub = subscription(api, user, sub["id"])
    assert [(p["orderId"], p["status"]) for p in sub["payments"]][1:] == [(order_id, "PENDING")]
    assert sub["status"] == "ACTIVE"

    advance(api, seoul(2026, 4, 2, 0, 30))  # the next run asks the gateway
    sub = subscription(api, user, sub["id"])
    assert [p["status"] for p in sub["payments"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert (sub["status"], at(sub["currentPeriodStart"]), at(sub["nextBillingAt"])) == (
        "ACTIVE", seoul(2026, 4, 1, 10), seoul(2026, 5, 1, 10)
    )
    assert [c["orderId"] for c in api.sandbox.charges()][1:] == [order_id]


def test_a_renewal_the_gateway_never_saw_fails_and_dunning_begins(api: Api, user: str) -> None:
    sub, order_id = renewal_left_pending(api, user, charged=False)
    advance(api, seoul(2026, 4, 2, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert [(p["status"], p["failureCode"]) for p in sub["payments"]][1:] == [("FAILED", "NETWORK_ERROR")]
    assert (sub["status"], sub["consecutiveFailures"], at(sub["nextBillingAt"])) == ("PAST_DUE", 1, seoul(2026, 4, 5))
    advance(api, seoul(2026, 4, 5, 0, 30))  # the retry, with the card that works
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], [p["status"] for p in sub["payments"]]) == ("ACTIVE", ["SUCCEEDED", "FAILED", "SUCCEEDED"])
    assert at(sub["currentPeriodStart"]) == seoul(2026, 4, 1, 10)  # a PAST_DUE one keeps its anchor


def test_a_sender_settling_on_its_stale_pending_copy_loses_to_the_settler_that_came_first(api: Api, user: str) -> None:
    """The sender settles first on the copy it read PENDING before its request (no reload):
    if the stale-payment run settled the order meanwhile, that copy's save conflicts on the
    payment's version and the retry sees the settled payment, which stays as it was."""
    sub, order_id = renewal_left_pending(api, user, charged=True)
    ledger, now = api.built.ledger, seoul(2026, 4, 1, 0, 5)
    payment = next(p for p in subscription(api, user, sub["id"])["payments"] if p["orderId"] == order_id)
    stale = ledger.payments.load(payment["id"])
    assert stale.status == "PENDING"
    found = asyncio.run(api.built.billing.look_up(stale))  # the stale-payment run's lookup: charged
    assert found is not None and found.status == ChargeStatus.APPROVED
    settled = ledger.payments.settle_charge(payment["id"], found, now)
    assert settled.status == "SUCCEEDED"

    declined = ChargeResult(ChargeStatus.DECLINED, order_id, decline_code=DeclineCode.INSUFFICIENT_FUNDS, message="x")
    after = ledger.payments.settle_charge(payment["id"], declined, now, pending=stale)
    assert (after.status, after.version) == ("SUCCEEDED", settled.version)
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], [p["status"] for p in sub["payments"]]) == ("ACTIVE", ["SUCCEEDED", "SUCCEEDED"])
    assert sub["consecutiveFailures"] == 0
    assert [c["orderId"] for c in api.sandbox.charges()][1:] == [order_id]
