"""`collections` and `subscriptionsByStatus` (the console's Collections and Revenue pages), on
both databases: a declined renewal is listed with its decline code, attempts and next retry."""
from __future__ import annotations

from datetime import timedelta

from projections.keyset import scope_of
from projections.subscriptions import CURSORS as SUBSCRIPTION_CURSORS
from tests.api.conftest import Api
from tests.scenarios.helpers import ADMIN, OUTCOME, advance, subscribe

COLLECTIONS = """query($n: Int!, $after: String) { collections(first: $n, after: $after) { items {
  subscription { id userId status consecutiveFailures } lastDeclineCode lastFailedAt attempts nextRetryAt } nextCursor } }"""
BY_STATUS = "{ subscriptionsByStatus { status count } }"


def test_a_declined_renewal_is_in_collections_and_counted_by_status(api: Api, user: str) -> None:
    method = api.add_card(user)
    paying = subscribe(api, f"{user}-ok", "basic", paymentMethodId=api.add_card(f"{user}-ok"), skipTrial=True)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    api.settle_read_models()
    assert api.gql(COLLECTIONS, {"n": 10}, **ADMIN)["collections"] == {"items": [], "nextCursor": None}
    api.gql(OUTCOME, {"m": method, "o": "INSUFFICIENT_FUNDS"}, user=user)
    advance(api, timedelta(days=31, hours=16))
    api.settle_read_models()

    cases = api.gql(COLLECTIONS, {"n": 10}, user="aud", scope="auditor")["collections"]["items"]
    assert [c["subscription"]["id"] for c in cases] == [sub["id"]]
    case = cases[0]
    assert case["subscription"]["status"] == "PAST_DUE" and case["lastDeclineCode"] == "INSUFFICIENT_FUNDS"
    assert case["attempts"] == case["subscription"]["consecutiveFailures"] == 1
    failed = [p for p in api.gql("query($u: ID) { paymentsPage(userId: $u) { items { status createdAt } } }", {"u": user},
                                 **ADMIN)["paymentsPage"]["items"] if p["status"] == "FAILED"]
    assert case["lastFailedAt"] == failed[0]["createdAt"]
    now = api.gql("{ clock { now } }")["clock"]["now"]
    assert case["nextRetryAt"] is not None and case["nextRetryAt"] > now

    counts = {row["status"]: row["count"] for row in api.gql(BY_STATUS, user="an", scope="analyst")["subscriptionsByStatus"]}
    assert counts == {"TRIALING": 0, "ACTIVE": 1, "PAST_DUE": 1, "CANCELING": 0, "CANCELED": 0, "EXPIRED": 0, "SUSPENDED": 0}
    assert paying["status"] == "ACTIVE"


def test_collections_page_newest_first_and_refuse_a_foreign_cursor(api: Api, user: str) -> None:
    subs = []
    for n in range(3):
        method = api.add_card(f"{user}-{n}")
        subs.append(subscribe(api, f"{user}-{n}", "basic", paymentMethodId=method, skipTrial=True)["id"])
        api.gql(OUTCOME, {"m": method, "o": "INSUFFICIENT_FUNDS"}, user=f"{user}-{n}")
    advance(api, timedelta(days=31, hours=16))
    api.settle_read_models()
    first = api.gql(COLLECTIONS, {"n": 2}, **ADMIN)["collections"]
    rest = api.gql(COLLECTIONS, {"n": 2, "after": first["nextCursor"]}, **ADMIN)["collections"]
    assert [c["subscription"]["id"] for c in first["items"] + rest["items"]] == subs[::-1]
    assert rest["nextCursor"] is None
    foreign = SUBSCRIPTION_CURSORS.encode(scope_of(f"{user}-0"), 1)  # a cursor of subscriptionsPage
    assert api.error(COLLECTIONS, {"n": 2, "after": foreign}, **ADMIN).code == "BAD_USER_INPUT"
    assert api.error(COLLECTIONS, {"n": 2, "after": "bm90LWEtY3Vyc29y"}, **ADMIN).code == "BAD_USER_INPUT"
    assert api.error(COLLECTIONS, {"n": 2}, user="an", scope="analyst").code == "FORBIDDEN"


def test_the_clock_names_the_service_time_zone(api_factory) -> None:
    api = api_factory(timezone="Europe/Berlin")
    assert api.gql("{ clock { timezone } }")["clock"]["timezone"] == "Europe/Berlin"
