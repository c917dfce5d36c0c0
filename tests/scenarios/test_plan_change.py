"""Plan changes: IMMEDIATE with a proration charge or a partial refund, NEXT_CYCLE (SPEC §3)."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import Api
from tests.scenarios.helpers import (
    CHANGE, advance, at, exact_share, seoul, set_outcome, subscribe, subscription,
)


def change(api: Api, user: str, sub_id: str, plan: str, **fields) -> dict:
    return api.gql(CHANGE, {"i": {"subscriptionId": sub_id, "planId": plan, **fields}}, user=user)["changePlan"]


def test_upgrade_now_charges_the_spec_net_as_a_proration(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    when = seoul(2026, 3, 12, 3, 17) + timedelta(seconds=9)
    advance(api, when)
    start, end = at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])
    net = exact_share(19900, end - when, end - start) - exact_share(9900, end - when, end - start)

    sub = change(api, user, sub["id"], "premium")
    assert (sub["plan"]["id"], sub["price"], sub["status"]) == ("premium", 19900, "ACTIVE")
    assert [(p["kind"], p["status"], p["amount"]) for p in sub["payments"]] == [
        ("SUBSCRIPTION", "SUCCEEDED", 9900), ("PRORATION", "SUCCEEDED", net)
    ]
    assert (at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])) == (start, end)  # same period
    advance(api, seoul(2026, 4, 1, 0, 30))
    renewed = subscription(api, user, sub["id"])["payments"][-1]
    assert (renewed["kind"], renewed["amount"], renewed["status"]) == ("SUBSCRIPTION", 19900, "SUCCEEDED")
    assert [c["amount"] for c in api.sandbox.charges()] == [9900, net, 19900]


def test_downgrade_now_refunds_the_difference_against_the_periods_payment(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    when = seoul(2026, 3, 23, 21, 5) + timedelta(seconds=33)
    advance(api, when)
    start, end = at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])
    refund = exact_share(19900, end - when, end - start) - exact_share(9900, end - when, end - start)
    assert refund > 0

    sub = change(api, user, sub["id"], "basic")
    assert (sub["plan"]["id"], sub["price"]) == ("basic", 9900)
    assert [(p["status"], p["amount"], p["refundedAmount"]) for p in sub["payments"]] == [
        ("PARTIALLY_REFUNDED", 19900, refund)
    ]
    advance(api, seoul(2026, 4, 1, 0, 30))
    assert subscription(api, user, sub["id"])["payments"][-1]["amount"] == 9900


def test_next_cycle_waits_for_the_renewal_and_charges_the_new_price(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    sub = change(api, user, sub["id"], "premium", proration="NEXT_CYCLE")
    assert (sub["plan"]["id"], sub["price"], len(sub["payments"])) == ("basic", 9900, 1)
    assert sub["pendingPlanChange"] == {
        "planId": "premium", "billingCycle": "MONTHLY", "effectiveAt": sub["currentPeriodEnd"]
    }
    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["plan"]["id"], sub["price"], sub["pendingPlanChange"]) == ("premium", 19900, None)
    assert [p["amount"] for p in sub["payments"]] == [9900, 19900]


def test_a_new_billing_cycle_always_waits_for_the_renewal(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    sub = change(api, user, sub["id"], "basic", billingCycle="ANNUAL", proration="IMMEDIATE")
    assert (sub["billingCycle"], sub["pendingPlanChange"]["billingCycle"]) == ("MONTHLY", "ANNUAL")
    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["billingCycle"], sub["price"], [p["amount"] for p in sub["payments"]]) == ("ANNUAL", 95040, [9900, 95040])
    assert (at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])) == (seoul(2026, 4, 1, 10), seoul(2027, 4, 1, 10))


def test_a_declined_proration_changes_nothing(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    set_outcome(api, user, method, "INSUFFICIENT_FUNDS")
    advance(api, seoul(2026, 3, 10, 12))
    error = api.error(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "master"}}, user=user)
    assert error.code == "PAYMENT_FAILED"
    after = subscription(api, user, sub["id"])
    assert (after["plan"]["id"], after["price"], after["status"]) == ("basic", 9900, "ACTIVE")
    assert [(p["kind"], p["status"]) for p in after["payments"]] == [("SUBSCRIPTION", "SUCCEEDED"), ("PRORATION", "FAILED")]


def test_changing_plan_during_a_trial_switches_without_charging(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    sub = change(api, user, sub["id"], "premium")
    assert (sub["status"], sub["plan"]["id"], sub["price"], sub["payments"]) == ("TRIALING", "premium", 19900, [])
    advance(api, seoul(2026, 3, 8, 0, 30))
    assert [p["amount"] for p in subscription(api, user, sub["id"])["payments"]] == [19900]
