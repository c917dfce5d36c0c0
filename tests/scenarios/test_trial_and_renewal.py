"""Trials, first charges and renewals over HTTP on the test clock (SPEC §3)."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import POOR_CARD, Api
from tests.scenarios.helpers import (
    CURRENT, SUBSCRIBE, USAGE, advance, at, now, seoul, subscribe, subscription, usage_of,
)


def test_trial_then_a_paid_month_then_a_renewal_with_usage_reset(api: Api, user: str) -> None:
    method = api.add_card(user)
    started = now(api)
    sub = subscribe(api, user, "basic", paymentMethodId=method)
    assert (sub["status"], sub["price"], sub["payments"]) == ("TRIALING", 9900, [])
    assert at(sub["trialEndsAt"]) == started + timedelta(days=7)
    assert at(sub["nextBillingAt"]) == at(sub["trialEndsAt"])

    advance(api, seoul(2026, 3, 8, 0, 30))  # the trial end's due run is 00:00 on its date
    sub = subscription(api, user, sub["id"])
    assert sub["status"] == "ACTIVE"
    assert [(p["status"], p["amount"], p["kind"], p["attempt"]) for p in sub["payments"]] == [
        ("SUCCEEDED", 9900, "SUBSCRIPTION", 1)
    ]
    assert at(sub["currentPeriodStart"]) == started + timedelta(days=7)
    assert at(sub["nextBillingAt"]) == at(sub["currentPeriodEnd"]) == seoul(2026, 4, 8, 10)

    used = api.gql(USAGE, {"i": {"subscriptionId": sub["id"], "service": "saju_calculations", "amount": 2}}, user=user)
    assert (used["recordUsage"]["used"], used["recordUsage"]["remaining"]) == (2, 48)

    advance(api, seoul(2026, 4, 8, 10, 1))
    sub = subscription(api, user, sub["id"])
    assert [(p["status"], p["amount"]) for p in sub["payments"]] == [("SUCCEEDED", 9900), ("SUCCEEDED", 9900)]
    assert at(sub["currentPeriodStart"]) == seoul(2026, 4, 8, 10)
    assert at(sub["nextBillingAt"]) == seoul(2026, 5, 8, 10)
    assert usage_of(sub, "saju_calculations")["used"] == 0
    assert at(usage_of(sub, "saju_calculations")["resetsAt"]) == seoul(2026, 5, 8, 10)
    assert [c["amount"] for c in api.sandbox.charges()] == [9900, 9900]


def test_annual_without_trial_is_charged_at_once(api: Api, user: str) -> None:
    method = api.add_card(user)
    started = now(api)
    sub = subscribe(api, user, "basic", paymentMethodId=method, billingCycle="ANNUAL", skipTrial=True)
    assert (sub["status"], sub["billingCycle"], sub["price"], sub["trialEndsAt"]) == ("ACTIVE", "ANNUAL", 95040, None)
    assert [(p["status"], p["amount"], p["kind"]) for p in sub["payments"]] == [("SUCCEEDED", 95040, "SUBSCRIPTION")]
    assert at(sub["currentPeriodStart"]) == started
    assert at(sub["currentPeriodEnd"]) == seoul(2027, 3, 1, 10)
    assert [c["amount"] for c in api.sandbox.charges()] == [95040]


def test_a_declined_first_charge_creates_no_subscription(api: Api, user: str) -> None:
    method = api.add_card(user, POOR_CARD)
    error = api.error(SUBSCRIBE, {"i": {"planId": "basic", "paymentMethodId": method, "skipTrial": True}}, user=user)
    assert error.code == "PAYMENT_FAILED"
    assert error.extensions["declineCode"] == "INSUFFICIENT_FUNDS"
    assert api.gql(CURRENT, user=user)["currentSubscription"] is None
    api.settle_read_models()
    assert api.gql("{ subscriptions { id } }", user=user)["subscriptions"] == []
    payments = api.gql("{ payments { id status failureCode kind amount } }", user=user)["payments"]
    assert payments == [
        {"id": error.extensions["paymentId"], "status": "FAILED", "failureCode": "INSUFFICIENT_FUNDS",
         "kind": "SUBSCRIPTION", "amount": 9900}
    ]
    # Nothing is held: the user may subscribe again (and still has a trial to come).
    assert subscribe(api, user, "basic", paymentMethodId=method)["status"] == "TRIALING"


def test_one_live_subscription_and_one_trial_per_user(api: Api, user: str) -> None:
    method = api.add_card(user)
    first = subscribe(api, user, "basic", paymentMethodId=method)
    refused = api.error(SUBSCRIBE, {"i": {"planId": "premium", "paymentMethodId": method}}, user=user)
    assert refused.code == "CONFLICT"
    assert api.gql(CURRENT, user=user)["currentSubscription"]["id"] == first["id"]

    canceled = api.gql(
        "mutation($id: ID!) { cancelSubscription(input: {subscriptionId: $id, atPeriodEnd: false}) { status } }",
        {"id": first["id"]}, user=user,
    )["cancelSubscription"]
    assert canceled["status"] == "CANCELED"
    assert api.gql(CURRENT, user=user)["currentSubscription"] is None

    again = subscribe(api, user, "premium", paymentMethodId=method)
    assert (again["status"], again["trialEndsAt"]) == ("ACTIVE", None)  # no second trial: charged at once
    assert [(p["status"], p["amount"]) for p in again["payments"]] == [("SUCCEEDED", 19900)]
    api.settle_read_models()
    listed = api.gql("{ subscriptions { id status } }", user=user)["subscriptions"]
    assert listed == [{"id": first["id"], "status": "CANCELED"}, {"id": again["id"], "status": "ACTIVE"}]


def test_a_trial_without_a_payment_method_expires_at_its_end(api: Api, user: str) -> None:
    sub = subscribe(api, user, "premium")
    assert (sub["status"], sub["paymentMethod"]) == ("TRIALING", None)
    advance(api, seoul(2026, 3, 7, 23, 0))
    assert subscription(api, user, sub["id"])["status"] == "TRIALING"
    runs = advance(api, seoul(2026, 3, 8, 1, 0))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["nextBillingAt"], sub["payments"]) == ("EXPIRED", None, [])
    assert any(run["job"] == "expire_trials" and run["succeeded"] == 1 for run in runs)
    assert api.gql(CURRENT, user=user)["currentSubscription"] is None
    assert api.sandbox.charges() == []


def test_free_plan_needs_no_method_and_renews_without_payments(api: Api, user: str) -> None:
    sub = subscribe(api, user, "free")
    assert (sub["status"], sub["price"], sub["trialEndsAt"], sub["payments"]) == ("ACTIVE", 0, None, [])
    assert [usage(api, user, sub["id"], "saju_calculations")["used"] for _ in range(3)] == [1, 2, 3]
    over = api.error(USAGE, {"i": {"subscriptionId": sub["id"], "service": "saju_calculations"}}, user=user)
    assert (over.code, over.extensions["limit"], over.extensions["used"]) == ("USAGE_LIMIT_EXCEEDED", 3, 3)
    advance(api, seoul(2026, 4, 1, 10, 1))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["payments"]) == ("ACTIVE", [])
    assert at(sub["currentPeriodStart"]) == seoul(2026, 4, 1, 10)
    assert usage(api, user, sub["id"], "saju_calculations")["used"] == 1  # reset with the new period
    advance(api, seoul(2026, 6, 1, 10, 1))
    sub = subscription(api, user, sub["id"])
    assert at(sub["currentPeriodEnd"]) == seoul(2026, 7, 1, 10)
    assert sub["payments"] == [] and api.sandbox.charges() == []


def usage(api: Api, user: str, sub_id: str, service: str, amount: int = 1) -> dict:
    return api.gql(USAGE, {"i": {"subscriptionId": sub_id, "service": service, "amount": amount}}, user=user)["recordUsage"]
