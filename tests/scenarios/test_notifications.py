"""The notifications outbox over HTTP: what is queued, when, and that each is sent once (SPEC §3, §7)."""
from __future__ import annotations

from tests.api.conftest import Api
from tests.scenarios.helpers import (
    ADMIN, USAGE, advance, at, kinds, notifications, seoul, subscribe,
)

REWARD = """mutation($u: ID!, $a: String!) { rewardPoints(input: {userId: $u, activity: $a}) { id } }"""
RUN = "mutation { runScheduledJobs { job processed succeeded failed } }"


def test_a_subscription_year_of_notifications_each_sent_once(api: Api, user: str) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    record = {"subscriptionId": sub["id"], "service": "zodiac_analyses"}
    api.gql(USAGE, {"i": {**record, "amount": 7}}, user=user)
    assert kinds(api, user) == ["WELCOME"]
    api.gql(USAGE, {"i": {**record, "amount": 1}}, user=user)  # 8 of 10: reaches 80%
    api.gql(USAGE, {"i": {**record, "amount": 1}}, user=user)
    warning = notifications(api, user)[0]
    assert (warning["kind"], warning["data"]["used"], warning["data"]["limit"]) == ("USAGE_WARNING", 8, 10)
    api.gql(REWARD, {"u": user, "a": "referral_signup"}, **ADMIN)

    advance(api, seoul(2026, 4, 8, 1))
    assert kinds(api, user) == [
        "WELCOME", "USAGE_WARNING", "POINTS_REWARDED",
        "TRIAL_ENDING", "TRIAL_ENDING", "PAYMENT_SUCCEEDED",
        "RENEWAL_REMINDER", "RENEWAL_REMINDER", "RENEWAL_REMINDER", "PAYMENT_SUCCEEDED",
    ]
    listed = list(reversed(notifications(api, user)))
    trial = [(n["data"]["daysBefore"], at(n["createdAt"])) for n in listed if n["kind"] == "TRIAL_ENDING"]
    assert trial == [(3, seoul(2026, 3, 5, 9)), (1, seoul(2026, 3, 7, 9))]
    renewal = [(n["data"]["daysBefore"], at(n["createdAt"]), n["data"]["amount"]) for n in listed if n["kind"] == "RENEWAL_REMINDER"]
    assert renewal == [(7, seoul(2026, 4, 1, 9), 9900), (3, seoul(2026, 4, 5, 9), 9900), (1, seoul(2026, 4, 7, 9), 9900)]

    # Without SMTP, development writes each one to the log, once, and says it was not e-mailed:
    # LOGGED, never "sent" (tests/email cover delivery over SMTP). Running the jobs again adds
    # and logs nothing.
    delivery = "{ notifications(first: 200) { id deliveryStatus deliveryAttempts sentAt lastDeliveryError } }"
    states = api.gql(delivery, user=user)["notifications"]
    assert {(n["deliveryStatus"], n["deliveryAttempts"], n["sentAt"], n["lastDeliveryError"]) for n in states} == {
        ("LOGGED", 1, None, None)
    }
    mine = [n["id"] for n in listed]
    again = api.gql(RUN, user="cron", scope="cron")["runScheduledJobs"]
    assert all(run["succeeded"] == 0 for run in again)
    assert [n["id"] for n in reversed(notifications(api, user))] == mine


def test_notifications_are_the_owners_only(api: Api, user: str) -> None:
    subscribe(api, user, "free")
    assert kinds(api, user) == ["WELCOME"]
    error = api.error("query($u: ID) { notifications(userId: $u) { id } }", {"u": user}, user="other")
    assert error.code == "FORBIDDEN"
    assert len(api.gql("query($u: ID) { notifications(userId: $u) { id } }", {"u": user}, **ADMIN)["notifications"]) == 1
