"""Refusals answer the contract's code and change nothing (SPEC §1, §3)."""
from __future__ import annotations

import uuid
from datetime import timedelta

from tests.api.conftest import Api
from tests.scenarios.helpers import (
    ADMIN, CANCEL, CHANGE, CURRENT, PROMO, RESUME, SUBSCRIBE, SUBSCRIPTION, USAGE, advance, now, seoul, subscribe,
    subscription,
)


def nothing_held(api: Api, user: str) -> None:
    assert api.gql(CURRENT, user=user)["currentSubscription"] is None
    api.settle_read_models()
    assert api.gql("{ subscriptions { id } payments { id } }", user=user) == {"subscriptions": [], "payments": []}


def promo(api: Api, code: str, **fields) -> dict:
    return api.gql(PROMO, {"i": {"code": code, **fields}}, **ADMIN)["createPromoCode"]


def test_unknown_plan_and_missing_method(api: Api, user: str) -> None:
    assert api.error(SUBSCRIBE, {"i": {"planId": "platinum"}}, user=user).code == "BAD_USER_INPUT"
    assert api.error(SUBSCRIBE, {"i": {"planId": "basic", "skipTrial": True}}, user=user).code == "BAD_USER_INPUT"
    foreign = api.add_card("someone-else")
    assert api.error(SUBSCRIBE, {"i": {"planId": "basic", "paymentMethodId": foreign}}, user=user).code == "NOT_FOUND"
    nothing_held(api, user)
    assert subscribe(api, user, "basic")["status"] == "TRIALING"  # the trial was not used up


def test_promo_codes_expired_exhausted_or_for_another_plan(api: Api, user: str) -> None:
    method = api.add_card(user)
    promo(api, "SPRING", percentOff=10, expiresAt=(now(api) + timedelta(days=1)).isoformat())
    promo(api, "ONCE", amountOff=1000, maxRedemptions=1)
    promo(api, "PREMIUMONLY", percentOff=20, planIds=["premium"])
    other = "another-user-" + uuid.uuid4().hex[:6]
    subscribe(api, other, "basic", promoCode="ONCE")
    advance(api, timedelta(days=2))
    for code in ("SPRING", "ONCE", "PREMIUMONLY", "NO-SUCH-CODE"):
        error = api.error(SUBSCRIBE, {"i": {"planId": "basic", "paymentMethodId": method, "promoCode": code}}, user=user)
        assert error.code == "PROMO_CODE_INVALID", code
    nothing_held(api, user)
    assert api.built.ledger.subscriptions.promo_code("ONCE").redemptions == 1
    assert api.built.ledger.subscriptions.promo_code("PREMIUMONLY").redemptions == 0
    assert subscribe(api, user, "premium", promoCode="PREMIUMONLY")["price"] == 15920


def test_a_promo_discount_lasts_its_periods(api: Api, user: str) -> None:
    created = promo(api, "half2", percentOff=50, durationPeriods=2, maxRedemptions=10)
    assert (created["code"], created["redemptions"], created["planIds"]) == ("half2", 0, None)
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user), skipTrial=True, promoCode="HALF2")
    assert (sub["price"], sub["promoCode"]) == (4950, "half2")
    advance(api, seoul(2026, 5, 1, 10, 1))
    sub = subscription(api, user, sub["id"])
    assert [p["amount"] for p in sub["payments"]] == [4950, 4950, 9900]
    assert sub["price"] == 9900


def test_promo_code_creation_is_for_admins_and_checked(api: Api, user: str) -> None:
    assert api.error(PROMO, {"i": {"code": "MINE", "percentOff": 10}}, user=user).code == "FORBIDDEN"
    for bad in ({"percentOff": 10, "amountOff": 100}, {}, {"percentOff": 0}, {"percentOff": 101},
                {"amountOff": -5}, {"percentOff": 5, "durationPeriods": 0}, {"percentOff": 5, "planIds": ["gold"]}):
        assert api.error(PROMO, {"i": {"code": "BAD", **bad}}, **ADMIN).code == "BAD_USER_INPUT", bad
    promo(api, "TWICE", percentOff=5)
    assert api.error(PROMO, {"i": {"code": "twice", "percentOff": 5}}, **ADMIN).code == "CONFLICT"


def test_someone_elses_subscription_reads_as_missing(api: Api, user: str) -> None:
    owner = "owner-" + uuid.uuid4().hex[:6]
    sub = subscribe(api, owner, "basic", paymentMethodId=api.add_card(owner), skipTrial=True)
    missing = str(uuid.uuid4())
    for sub_id in (sub["id"], missing, "not-a-uuid"):
        assert api.error(SUBSCRIPTION, {"id": sub_id}, user=user).code == "NOT_FOUND"
        assert api.error(CANCEL, {"i": {"subscriptionId": sub_id, "atPeriodEnd": False}}, user=user).code == "NOT_FOUND"
        assert api.error(RESUME, {"id": sub_id}, user=user).code == "NOT_FOUND"
        assert api.error(CHANGE, {"i": {"subscriptionId": sub_id, "planId": "premium"}}, user=user).code == "NOT_FOUND"
        error = api.error(USAGE, {"i": {"subscriptionId": sub_id, "service": "saju_calculations"}}, user=user)
        assert error.code == "NOT_FOUND"
    after = subscription(api, owner, sub["id"])
    assert (after["status"], after["version"], after["payments"][0]["refundedAmount"]) == ("ACTIVE", sub["version"], 0)
    # An admin may act on it; an auditor may read it only as of a time.
    assert api.gql(SUBSCRIPTION, {"id": sub["id"]}, **ADMIN)["subscription"]["userId"] == owner
    assert api.error(SUBSCRIPTION, {"id": sub["id"]}, user="audit", scope="auditor").code == "NOT_FOUND"
    then = api.gql(SUBSCRIPTION, {"id": sub["id"], "at": now(api).isoformat()}, user="audit", scope="auditor")
    assert then["subscription"]["status"] == "ACTIVE"


def test_state_conflicts(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user), skipTrial=True)
    assert api.error(RESUME, {"id": sub["id"]}, user=user).code == "CONFLICT"
    assert api.error(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "basic"}}, user=user).code == "CONFLICT"
    assert api.error(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "nope"}}, user=user).code == "BAD_USER_INPUT"
    api.gql(CANCEL, {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False}}, user=user)
    for query, variables in (
        (CANCEL, {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False}}),
        (RESUME, {"id": sub["id"]}),
        (CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "premium"}}),
        (USAGE, {"i": {"subscriptionId": sub["id"], "service": "saju_calculations"}}),
    ):
        assert api.error(query, variables, user=user).code == "CONFLICT"
    after = subscription(api, user, sub["id"])
    assert after["payments"][0]["refundedAmount"] > 0 and after["status"] == "CANCELED"


def test_bad_usage_records_nothing(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    api.gql(USAGE, {"i": {"subscriptionId": sub["id"], "service": "zodiac_analyses", "amount": 2}}, user=user)
    before = subscription(api, user, sub["id"])
    for service, amount in (("zodiac_analyses", 0), ("zodiac_analyses", -3), ("zodiac_analysis", 1), ("saju_basic", 1)):
        error = api.error(USAGE, {"i": {"subscriptionId": sub["id"], "service": service, "amount": amount}}, user=user)
        assert error.code == "BAD_USER_INPUT", (service, amount)
    over = api.error(USAGE, {"i": {"subscriptionId": sub["id"], "service": "zodiac_analyses", "amount": 9}}, user=user)
    assert (over.code, over.extensions["limit"], over.extensions["used"]) == ("USAGE_LIMIT_EXCEEDED", 10, 2)
    not_on_plan = api.error(USAGE, {"i": {"subscriptionId": sub["id"], "service": "astrology_readings"}}, user=user)
    assert (not_on_plan.code, not_on_plan.extensions["limit"]) == ("USAGE_LIMIT_EXCEEDED", 0)
    after = subscription(api, user, sub["id"])
    assert (after["version"], after["usage"]) == (before["version"], before["usage"])
