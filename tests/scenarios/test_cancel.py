"""Canceling at the period end, resuming, and canceling now with a prorated refund (SPEC §3)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.api.conftest import Api
from tests.scenarios.helpers import (
    CANCEL, RESUME, advance, at, exact_share, kinds, notifications, seoul, subscribe, subscription,
)


def cancel(api: Api, user: str, sub_id: str, at_period_end: bool, reason: str | None = None) -> dict:
    fields = {"subscriptionId": sub_id, "atPeriodEnd": at_period_end, "reason": reason}
    return api.gql(CANCEL, {"i": fields}, user=user)["cancelSubscription"]


def test_cancel_at_period_end_charges_nothing_more_and_ends_after_the_period(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    advance(api, seoul(2026, 3, 20, 12))
    sub = cancel(api, user, sub["id"], True, "too expensive")
    assert (sub["status"], sub["cancelAtPeriodEnd"], sub["nextBillingAt"]) == ("CANCELING", True, None)
    assert sub["cancelReason"] == "too expensive"

    advance(api, seoul(2026, 4, 1, 9, 59))  # the renewal's run has passed: no charge
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], len(sub["payments"])) == ("CANCELING", 1)
    advance(api, seoul(2026, 4, 2, 0, 30))  # the first run after the period's end
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], at(sub["canceledAt"])) == ("CANCELED", seoul(2026, 4, 2))
    assert len(sub["payments"]) == 1 and [c["amount"] for c in api.sandbox.charges()] == [9900]
    assert sub["payments"][0]["refundedAmount"] == 0
    assert kinds(api, user).count("SUBSCRIPTION_CANCELED") == 1


def test_resume_before_the_end_renews_normally(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    cancel(api, user, sub["id"], True)
    advance(api, seoul(2026, 3, 31, 12))
    sub = api.gql(RESUME, {"id": sub["id"]}, user=user)["resumeSubscription"]
    assert (sub["status"], sub["cancelAtPeriodEnd"], at(sub["nextBillingAt"])) == ("ACTIVE", False, seoul(2026, 4, 1, 10))
    advance(api, seoul(2026, 4, 2, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert sub["status"] == "ACTIVE"
    assert [(p["status"], p["amount"]) for p in sub["payments"]] == [("SUCCEEDED", 9900), ("SUCCEEDED", 9900)]


def test_cancel_now_refunds_the_unused_share_exactly(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    when = seoul(2026, 3, 17, 14, 22) + timedelta(seconds=41, microseconds=250_000)
    advance(api, when)
    start, end = at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])
    expected = exact_share(19900, end - when, end - start)
    assert 0 < expected < 19900

    sub = cancel(api, user, sub["id"], False, "moving abroad")
    assert (sub["status"], sub["nextBillingAt"], at(sub["canceledAt"])) == ("CANCELED", None, when)
    payment = sub["payments"][0]
    assert (payment["status"], payment["refundedAmount"]) == ("PARTIALLY_REFUNDED", expected)
    at_provider = asyncio.run(api.sandbox.lookup_order(payment["orderId"])).body
    assert (at_provider["status"], at_provider["balanceAmount"]) == ("PARTIAL_CANCELED", 19900 - expected)
    canceled = [n for n in reversed(notifications(api, user)) if n["kind"] == "SUBSCRIPTION_CANCELED"]
    assert [n["data"]["refunded"] for n in canceled] == [expected]


def test_canceling_a_trial_ends_it_without_a_charge(api: Api, user: str) -> None:
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method)
    sub = cancel(api, user, sub["id"], True)
    assert (sub["status"], sub["cancelAtPeriodEnd"]) == ("CANCELING", True)
    advance(api, seoul(2026, 3, 9, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["payments"]) == ("CANCELED", [])
    assert api.sandbox.charges() == []


def test_cancel_now_during_a_trial_refunds_nothing(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    sub = cancel(api, user, sub["id"], False)
    assert (sub["status"], sub["payments"]) == ("CANCELED", [])
