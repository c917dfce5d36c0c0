"""Auth, scopes and bad input (SPEC §1): the right code, nothing changed, no internals leaked."""
from __future__ import annotations

import json
import time

import pytest

from schema.auth import mint_token
from tests.api.conftest import JWT_SECRET, Api

WALLET = "query($u: ID) { wallet(userId: $u) { usableBalance totalBalance version } }"
SPEND = "mutation($i: SpendPointsInput!) { spendPoints(input: $i) { pointsSpent remainingBalance } }"
REWARD = 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "daily_login"}) { amount } }'
ADJUST = "mutation($u: ID!, $a: Int!) { adjustPoints(input: {userId: $u, amount: $a, reason: \"r\"}) { amount } }"
PURCHASE = "mutation($p: ID!, $m: ID!) { purchasePoints(input: {packageId: $p, paymentMethodId: $m}) { totalPoints } }"


def funded(api: Api, user: str, points: int = 1000) -> None:
    api.gql(ADJUST, {"u": user, "a": points}, user="ops", scope="admin")


def balance(api: Api, user: str) -> tuple[int, int]:
    wallet = api.gql(WALLET, user=user)["wallet"]
    return wallet["usableBalance"], wallet["version"]


def assert_clean(body: dict) -> None:
    """No stack trace, SQL or exception class names in what the client sees."""
    text = json.dumps(body)
    for leak in ("Traceback", 'File "', "psycopg", "sqlite3", "SELECT ", "Error(", "eventsourcing"):
        assert leak not in text, f"leaked {leak!r}: {text}"


def test_no_token_is_unauthenticated_but_catalog_and_clock_are_public(api: Api) -> None:
    assert api.error("{ me }").code == "UNAUTHENTICATED"
    assert api.error(WALLET).code == "UNAUTHENTICATED"
    assert api.gql("{ catalog { plans { id } } clock { controllable } }")["clock"]["controllable"] is True
    bad = api.post("{ me }", token="not-a-jwt")
    assert bad["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    forged = mint_token("another-secret-of-sufficient-length!!", "u1", "admin")
    assert api.post("{ me }", token=forged)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    expired = mint_token(JWT_SECRET, "u1", "user", ttl_seconds=-10)
    assert api.post("{ me }", token=expired)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_token_verified_once_still_expires_at_its_exp(api: Api) -> None:
    # Verified tokens are remembered (schema/auth.py); expiry is checked again on every use.
    token = mint_token(JWT_SECRET, "u-expiring", "user", ttl_seconds=3)
    assert api.post("{ me }", token=token)["data"]["me"] == "u-expiring"
    assert api.post("{ me }", token=token)["data"]["me"] == "u-expiring"
    time.sleep(3.1)
    error = api.post("{ me }", token=token)["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and "expired" in error["message"]
    assert api.post("{ me }", token=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))["errors"][0][
        "extensions"]["code"] == "UNAUTHENTICATED"


def test_a_user_cannot_read_or_spend_another_users_wallet(api: Api, user: str) -> None:
    funded(api, user)
    intruder = f"{user}-intruder"
    assert api.error(WALLET, {"u": user}, user=intruder).code == "FORBIDDEN"
    error = api.error(SPEND, {"i": {"amount": 100, "serviceId": "x", "userId": user}}, user=intruder)
    assert error.code == "FORBIDDEN"
    assert balance(api, user) == (1000, 2)
    # An admin may act for the user.
    assert api.gql(WALLET, {"u": user}, user="ops", scope="admin")["wallet"]["usableBalance"] == 1000


def test_a_user_token_cannot_reward_or_adjust(api: Api, user: str) -> None:
    assert api.error(REWARD, {"u": user}, user=user).code == "FORBIDDEN"
    assert api.error(ADJUST, {"u": user, "a": 500}, user=user).code == "FORBIDDEN"
    assert balance(api, user) == (0, 0)
    assert api.gql(REWARD, {"u": user}, user="svc", scope="system")["rewardPoints"]["amount"] == 10


def test_a_foreign_payment_method_reads_as_not_found(api: Api, user: str) -> None:
    method = api.add_card(user)
    other = f"{user}-other"
    error = api.error(PURCHASE, {"p": "starter", "m": method}, user=other)
    assert error.code == "NOT_FOUND"
    missing = api.error(PURCHASE, {"p": "starter", "m": "pm_nothing_here"}, user=other)
    assert missing.code == "NOT_FOUND"
    outcome = "mutation($m: ID!) { setSandboxOutcome(paymentMethodId: $m, outcome: INSUFFICIENT_FUNDS) { id } }"
    assert api.error(outcome, {"m": method}, user=other).code == "NOT_FOUND"
    assert api.error("mutation($m: ID!) { removePaymentMethod(id: $m) { id } }", {"m": method}, user=other).code == "NOT_FOUND"
    methods = api.gql("{ paymentMethods { id active } }", user=user)["paymentMethods"]
    assert methods == [{"id": method, "active": True}]


@pytest.mark.parametrize(
    "spend_input, code",
    [
        ({"amount": -100, "serviceId": "s"}, "BAD_USER_INPUT"),
        ({"amount": 0, "serviceId": "s"}, "BAD_USER_INPUT"),
        ({"service": "saju_basic", "amount": 100, "serviceId": "s"}, "BAD_USER_INPUT"),
        ({"serviceId": "s"}, "BAD_USER_INPUT"),
        ({"service": "palm_reading", "serviceId": "s"}, "BAD_USER_INPUT"),
        ({"amount": 2**40, "serviceId": "s"}, "BAD_USER_INPUT"),
        ({"amount": 100, "serviceId": ""}, "BAD_USER_INPUT"),
        ({"amount": "100", "serviceId": "s"}, "BAD_USER_INPUT"),
    ],
)
def test_bad_spend_input_changes_nothing(api: Api, user: str, spend_input: dict, code: str) -> None:
    funded(api, user)
    body = api.post(SPEND, {"i": spend_input}, token=api.token(user))
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert_clean(body)
    assert balance(api, user) == (1000, 2)


def test_bad_purchase_and_adjust_input(api: Api, user: str) -> None:
    method = api.add_card(user)
    assert api.error(PURCHASE, {"p": "gigantic", "m": method}, user=user).code == "BAD_USER_INPUT"
    assert api.error(ADJUST, {"u": user, "a": 0}, user="ops", scope="admin").code == "BAD_USER_INPUT"
    assert api.error(ADJUST, {"u": user, "a": -5}, user="ops", scope="admin").code == "INSUFFICIENT_POINTS"
    unknown = 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "sleeping"}) { amount } }'
    assert api.error(unknown, {"u": user}, user="ops", scope="admin").code == "BAD_USER_INPUT"
    provider = 'mutation { registerPaymentMethod(input: {provider: TOSS, authKey: "a", customerKey: "c"}) { id } }'
    assert api.error(provider, user=user).code == "BAD_USER_INPUT"
    card = 'mutation { registerPaymentMethod(input: {provider: SANDBOX, authKey: "4300000000000001", customerKey: "c"}) { id } }'
    assert api.error(card, user=user).code == "BAD_USER_INPUT"
    assert balance(api, user) == (0, 0)
    assert len(api.gql("{ paymentMethods { id } }", user=user)["paymentMethods"]) == 1


def test_times_need_an_offset(api: Api, user: str) -> None:
    query = "query($f: PointTransactionFilter) { wallet { transactions(filter: $f) { totalCount } } }"
    body = api.post(query, {"f": {"from": "2026-03-01T00:00:00"}}, token=api.token(user))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "offset" in body["errors"][0]["message"]
    before = api.gql("{ clock { now } }")["clock"]["now"]
    advance = "mutation($t: DateTime!) { advanceTestClock(to: $t) { job } }"
    assert api.error(advance, {"t": "2027-01-01T00:00:00"}, user="ops", scope="admin").code == "BAD_USER_INPUT"
    assert api.gql("{ clock { now } }")["clock"]["now"] == before


def test_malformed_requests_answer_graphql_errors(api: Api, user: str) -> None:
    headers = {"Authorization": f"Bearer {api.token(user)}", "Content-Type": "application/json"}
    response = api.client.post(f"{api.url}/graphql", content=b'{"query": "{ me }"', headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    syntax = api.post("{ wallet { usableBalance ", token=api.token(user))
    assert syntax["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    unknown_field = api.post("{ wallet { secretField } }", token=api.token(user))
    assert unknown_field["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    huge = api.client.post(f"{api.url}/graphql", content=b"{" + b" " * 2_000_000 + b"}", headers=headers)
    assert huge.status_code == 413
    assert huge.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_deep_and_wide_queries_are_refused(api: Api, user: str) -> None:
    deep = "{ catalog " + "{ plans " * 50 + "{ id }" + " }" * 51
    body = api.post(deep, token=api.token(user))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert_clean(body)
    aliases = "{ " + " ".join(f"a{i}: me" for i in range(200)) + " }"
    body = api.post(aliases, token=api.token(user))
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    depth = "query { wallet { transactions { items { id } } } }"  # a legitimate query still works
    assert api.gql(depth, user=user)["wallet"]["transactions"]["items"] == []


def test_cron_endpoint_needs_the_secret(api: Api, user: str) -> None:
    funded(api, user)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "cron-secret-for-tests"}):
        response = api.client.post(f"{api.url}/cron/run", headers=headers)
        assert response.status_code == 401
    assert balance(api, user) == (1000, 2)
    ok = api.client.post(f"{api.url}/cron/run", headers={"Authorization": "Bearer cron-secret-for-tests"})
    assert ok.status_code == 200
    assert "expire_points" in [run["job"] for run in ok.json()["runs"]]


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get(f"{api.url}/healthz").json() == {"status": "ok"}
    ready = api.client.get(f"{api.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
