"""Failed renewals: dunning retries, suspension, hard declines, in-call retries (SPEC §3)."""
from __future__ import annotations

import asyncio
from uuid import UUID

from tests.api.conftest import GOOD_CARD, POOR_CARD, Api
from tests.scenarios.helpers import (
    UPDATE_METHOD, advance, at, kinds, notifications, now, seoul, set_outcome, subscribe, subscription,
)


def paid_monthly(api: Api, user: str, card: str = GOOD_CARD) -> tuple[dict, str]:
    """basic, monthly, charged at once at 2026-03-01 10:00 (Seoul): renews on 2026-04-01."""
    method = api.add_card(user, card)
    return subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True), method


def statuses(sub: dict) -> list[tuple]:
    return [(p["status"], p["failureCode"], p["attempt"]) for p in sub["payments"]]


def test_three_failed_attempts_suspend_and_a_new_card_starts_a_new_period(api: Api, user: str) -> None:
    sub, method = paid_monthly(api, user)
    set_outcome(api, user, method, "INSUFFICIENT_FUNDS")

    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"]) == ("PAST_DUE", 1)
    assert statuses(sub)[1:] == [("FAILED", "INSUFFICIENT_FUNDS", 1)]
    assert at(sub["nextBillingAt"]) == seoul(2026, 4, 4)  # retried 3 days after the first failure

    advance(api, seoul(2026, 4, 3, 23, 0))
    assert subscription(api, user, sub["id"])["consecutiveFailures"] == 1  # nothing before the retry's run
    advance(api, seoul(2026, 4, 4, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"], at(sub["nextBillingAt"])) == ("PAST_DUE", 2, seoul(2026, 4, 7))

    advance(api, seoul(2026, 4, 7, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"], sub["nextBillingAt"]) == ("SUSPENDED", 3, None)
    assert at(sub["suspendedAt"]) == seoul(2026, 4, 7)
    assert statuses(sub)[1:] == [("FAILED", "INSUFFICIENT_FUNDS", n) for n in (1, 2, 3)]

    advance(api, seoul(2026, 5, 15))
    assert len(subscription(api, user, sub["id"])["payments"]) == 4  # no charge while suspended

    good = api.add_card(user)
    paid_at = now(api)
    sub = api.gql(UPDATE_METHOD, {"id": sub["id"], "m": good}, user=user)["updateSubscriptionPaymentMethod"]
    assert (sub["status"], sub["consecutiveFailures"], sub["paymentMethod"]["id"]) == ("ACTIVE", 0, good)
    assert sub["payments"][-1]["status"] == "SUCCEEDED" and sub["payments"][-1]["amount"] == 9900
    assert at(sub["currentPeriodStart"]) == paid_at  # a suspended subscription starts afresh
    assert at(sub["nextBillingAt"]) == seoul(2026, 6, 15)

    failed = [n for n in reversed(notifications(api, user)) if n["kind"] == "PAYMENT_FAILED"]
    retries = [at(n["data"]["retryAt"]) if n["data"]["retryAt"] else None for n in failed]
    assert retries == [seoul(2026, 4, 4), seoul(2026, 4, 7), None]  # the third one suspends
    assert kinds(api, user).count("SUBSCRIPTION_SUSPENDED") == 1


def test_a_past_due_subscription_paid_by_a_new_card_keeps_its_anchor(api: Api, user: str) -> None:
    sub, method = paid_monthly(api, user)
    set_outcome(api, user, method, "LIMIT_EXCEEDED")
    advance(api, seoul(2026, 4, 2, 12))
    poor = api.add_card(user, POOR_CARD)
    refused = api.error(UPDATE_METHOD, {"id": sub["id"], "m": poor}, user=user)
    assert (refused.code, refused.extensions["declineCode"]) == ("PAYMENT_FAILED", "INSUFFICIENT_FUNDS")
    kept = subscription(api, user, sub["id"])
    assert (kept["status"], kept["consecutiveFailures"], kept["paymentMethod"]["id"]) == ("PAST_DUE", 1, method)
    assert at(kept["nextBillingAt"]) == seoul(2026, 4, 4)

    good = api.add_card(user)
    sub = api.gql(UPDATE_METHOD, {"id": sub["id"], "m": good}, user=user)["updateSubscriptionPaymentMethod"]
    assert (sub["status"], sub["consecutiveFailures"]) == ("ACTIVE", 0)
    assert at(sub["currentPeriodStart"]) == seoul(2026, 4, 1, 10)
    assert at(sub["nextBillingAt"]) == seoul(2026, 5, 1, 10)
    assert [p["status"] for p in sub["payments"]] == ["SUCCEEDED", "FAILED", "FAILED", "SUCCEEDED"]


def test_a_hard_decline_is_never_sent_again_with_the_same_method(api: Api, user: str) -> None:
    sub, method = paid_monthly(api, user)
    set_outcome(api, user, method, "CARD_SUSPENDED")
    advance(api, seoul(2026, 4, 1, 0, 30))
    first = subscription(api, user, sub["id"])
    assert statuses(first)[1:] == [("FAILED", "CARD_SUSPENDED", 1)]
    # If the method were sent again, the sandbox would now approve it.
    set_outcome(api, user, method, "SUCCEED")

    advance(api, seoul(2026, 4, 4, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"], at(sub["nextBillingAt"])) == ("PAST_DUE", 2, seoul(2026, 4, 7))
    advance(api, seoul(2026, 4, 7, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"], at(sub["suspendedAt"])) == ("SUSPENDED", 3, seoul(2026, 4, 7))
    # The retries are recorded as FAILED payments with the remembered code, and never sent.
    assert statuses(sub)[1:] == [("FAILED", "CARD_SUSPENDED", 1), ("FAILED", "CARD_SUSPENDED", 2), ("FAILED", "CARD_SUSPENDED", 3)]
    assert [c["amount"] for c in api.sandbox.charges()] == [9900]
    hex_id = UUID(sub["id"]).hex
    for attempt in (2, 3):
        reply = asyncio.run(api.sandbox.lookup_order(f"sub-{hex_id}-p1-a{attempt}"))
        assert reply.status == 404
    failed = [n for n in notifications(api, user) if n["kind"] == "PAYMENT_FAILED"]
    assert [n["data"]["declineCode"] for n in failed] == ["CARD_SUSPENDED"] * 3


def test_a_server_error_at_renewal_is_retried_in_the_call(api: Api, user: str) -> None:
    sub, method = paid_monthly(api, user)
    set_outcome(api, user, method, "SERVER_ERROR_ONCE")
    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert sub["status"] == "ACTIVE"
    assert statuses(sub) == [("SUCCEEDED", None, 1), ("SUCCEEDED", None, 1)]
    assert [c["amount"] for c in api.sandbox.charges()] == [9900, 9900]


def test_a_failed_trial_end_charge_makes_the_trial_past_due(api: Api, user: str) -> None:
    method = api.add_card(user, POOR_CARD)
    sub = subscribe(api, user, "basic", paymentMethodId=method)
    advance(api, seoul(2026, 3, 8, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"]) == ("PAST_DUE", 1)
    assert at(sub["currentPeriodStart"]) == seoul(2026, 3, 8, 10)  # the first period runs unpaid
    assert at(sub["nextBillingAt"]) == seoul(2026, 3, 11)

