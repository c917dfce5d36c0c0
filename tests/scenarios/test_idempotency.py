"""Idempotency keys on subscription operations, and `asOf` reads (schema.graphql conventions)."""
from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import POOR_CARD, Api
from tests.scenarios.helpers import (
    CANCEL, CHANGE, SUBSCRIBE, SUBSCRIPTION, USAGE, advance, at, now, seoul, subscribe, subscription,
)


def test_subscribe_with_a_key_answers_the_first_result(api: Api, user: str) -> None:
    method = api.add_card(user)
    first = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True, idempotencyKey="sub-1")
    again = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True, idempotencyKey="sub-1")
    assert again["id"] == first["id"] and len(again["payments"]) == 1
    reused = api.error(SUBSCRIBE, {"i": {"planId": "premium", "paymentMethodId": method, "idempotencyKey": "sub-1"}}, user=user)
    assert reused.code == "IDEMPOTENCY_KEY_REUSED"
    assert [c["amount"] for c in api.sandbox.charges()] == [9900]


def test_a_declined_subscribe_repeated_with_its_key_fails_again_without_a_new_charge(api: Api, user: str) -> None:
    method = api.add_card(user, POOR_CARD)
    variables = {"i": {"planId": "basic", "paymentMethodId": method, "skipTrial": True, "idempotencyKey": "k"}}
    first = api.error(SUBSCRIBE, variables, user=user)
    second = api.error(SUBSCRIBE, variables, user=user)
    assert first.code == second.code == "PAYMENT_FAILED"
    assert first.extensions["paymentId"] == second.extensions["paymentId"]
    api.settle_read_models()
    assert len(api.gql("{ payments { id } }", user=user)["payments"]) == 1


def test_cancel_now_and_change_plan_with_keys_move_money_once(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    advance(api, seoul(2026, 3, 10, 12))
    upgrade = {"i": {"subscriptionId": sub["id"], "planId": "premium", "idempotencyKey": "up"}}
    first = api.gql(CHANGE, upgrade, user=user)["changePlan"]
    again = api.gql(CHANGE, upgrade, user=user)["changePlan"]
    assert [p["kind"] for p in again["payments"]] == ["SUBSCRIPTION", "PRORATION"] == [p["kind"] for p in first["payments"]]
    other = {"i": {"subscriptionId": sub["id"], "planId": "master", "idempotencyKey": "up"}}
    assert api.error(CHANGE, other, user=user).code == "IDEMPOTENCY_KEY_REUSED"

    advance(api, timedelta(days=2))
    stop = {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False, "idempotencyKey": "stop"}}
    canceled = api.gql(CANCEL, stop, user=user)["cancelSubscription"]
    advance(api, timedelta(hours=5))
    repeated = api.gql(CANCEL, stop, user=user)["cancelSubscription"]
    assert canceled["status"] == repeated["status"] == "CANCELED"
    assert [p["refundedAmount"] for p in repeated["payments"]] == [p["refundedAmount"] for p in canceled["payments"]]
    assert sum(p["refundedAmount"] for p in canceled["payments"]) > 0


def test_record_usage_with_a_key_counts_once(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic")
    record = {"i": {"subscriptionId": sub["id"], "service": "saju_calculations", "amount": 2, "idempotencyKey": "u1"}}
    first = api.gql(USAGE, record, user=user)["recordUsage"]
    again = api.gql(USAGE, record, user=user)["recordUsage"]
    assert first == again and first["used"] == 2
    record["i"]["amount"] = 3
    assert api.error(USAGE, record, user=user).code == "IDEMPOTENCY_KEY_REUSED"
    assert subscription(api, user, sub["id"])["usage"][0]["used"] == 2


def test_as_of_reads_rebuild_the_past(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    during_trial = now(api) + timedelta(days=1)
    advance(api, seoul(2026, 3, 9))
    assert subscription(api, user, sub["id"])["status"] == "ACTIVE"
    then = subscription(api, user, sub["id"], at=during_trial.isoformat())
    assert (then["status"], then["payments"], then["version"]) == ("TRIALING", [], 1)
    before = api.gql(SUBSCRIPTION, {"id": sub["id"], "at": (at(sub["startedAt"]) - timedelta(seconds=1)).isoformat()}, user=user)
    assert before["subscription"] is None
