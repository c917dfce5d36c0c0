"""The per-caller limit on mutations that move money or call a gateway (schema/rate_limit.py).

A short window (3 calls per 5 s) keeps the tests quick; the only waiting is for
the window to pass, as long as the answer's Retry-After says.
"""
from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from schema.auth import Caller
from schema.rate_limit import MoneyRateLimiter, limited_fields
from subledger.settings import Settings
from tests.api.conftest import Api

LIMIT = "3 per 5 seconds"
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) {
  payment { id status } } }"""
TWO_PURCHASES = """mutation($m: ID!) {
  a: purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) { payment { id } }
  b: purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) { payment { id } } }"""
WALLET = "{ wallet { totalBalance } payments { id } }"


def post(api: Api, query: str, variables: dict[str, Any], user: str, scope: str = "user") -> httpx.Response:
    return api.client.post(
        f"{api.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {api.token(user, scope)}"},
    )


def assert_refused(response: httpx.Response) -> int:
    """The refusal's shape: 429, RATE_LIMITED with retryAfter, the same figure in Retry-After."""
    body = response.json()
    assert response.status_code == 429, body
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert isinstance(retry_after, int) and 1 <= retry_after <= 5
    assert response.headers["Retry-After"] == str(retry_after)
    return retry_after


def state(api: Api, user: str) -> tuple[Any, ...]:
    """What a refused call must not change: the user's wallet and payments, and the gateway's record."""
    api.settle_read_models()
    data = api.gql(WALLET, user=user)
    return data["wallet"]["totalBalance"], sorted(p["id"] for p in data["payments"]), len(api.sandbox.charges())


def test_over_the_limit_is_refused_with_retry_after_and_changes_nothing(api_factory: Any, user: str) -> None:
    api = api_factory(rate_limit=LIMIT)
    method = api.add_card(user)  # 1 of 3: registering a card calls the gateway
    assert post(api, PURCHASE, {"m": method}, user).status_code == 200  # 2 of 3
    before = state(api, user)
    # One unit is left: a document asking for two is refused whole; neither purchase runs.
    assert_refused(post(api, TWO_PURCHASES, {"m": method}, user))
    assert state(api, user) == before
    assert post(api, PURCHASE, {"m": method}, user).json()["data"]["purchasePoints"]["payment"]["status"] == "SUCCEEDED"
    before = state(api, user)
    retry_after = assert_refused(post(api, PURCHASE, {"m": method}, user))
    assert state(api, user) == before
    # Reads and point spends are not limited.
    assert api.gql("{ wallet { usableBalance } }", user=user)["wallet"]["usableBalance"] == 2000

    # Another user, and an admin, have counts of their own.
    other = f"{user}-other"
    other_method = api.add_card(other)
    assert post(api, PURCHASE, {"m": other_method}, other).status_code == 200
    assert post(api, "mutation($m: ID!) { setSandboxOutcome(paymentMethodId: $m, outcome: SUCCEED) { id } }",
                {"m": method}, "ops", "admin").status_code == 200

    time.sleep(retry_after)
    assert post(api, PURCHASE, {"m": method}, user).json()["data"]["purchasePoints"]["payment"]["status"] == "SUCCEEDED"


@pytest.mark.redis
def test_processes_sharing_redis_share_the_count(api_factory: Any, user: str, redis_url: str) -> None:
    first = api_factory(rate_limit=LIMIT, redis_url=redis_url)
    second = api_factory(rate_limit=LIMIT, redis_url=redis_url, projections_in_process=False)
    method = first.add_card(user)
    assert post(second, PURCHASE, {"m": method}, user).status_code == 200
    assert post(first, PURCHASE, {"m": method}, user).status_code == 200
    charges = len(first.sandbox.charges()) + len(second.sandbox.charges())
    retry_after = assert_refused(post(second, PURCHASE, {"m": method}, user))
    assert len(first.sandbox.charges()) + len(second.sandbox.charges()) == charges
    assert_refused(post(first, PURCHASE, {"m": method}, user))

    other = f"{user}-other"
    assert post(second, PURCHASE, {"m": second.add_card(other)}, other).status_code == 200

    time.sleep(retry_after)
    assert post(second, PURCHASE, {"m": method}, user).status_code == 200


def test_an_unreachable_redis_lets_calls_through(api_factory: Any, user: str) -> None:
    """The limiter is a guard, not a dependency: with its Redis down, people can still pay."""
    api = api_factory(rate_limit="1 per 10 seconds", redis_url="redis://127.0.0.1:9/0")
    method = api.add_card(user)
    assert post(api, PURCHASE, {"m": method}, user).json()["data"]["purchasePoints"]["payment"]["status"] == "SUCCEEDED"


def test_unlimited_when_switched_off(api_factory: Any, user: str) -> None:
    api = api_factory(rate_limit="off")
    method = api.add_card(user)
    for _ in range(4):
        assert post(api, PURCHASE, {"m": method}, user).status_code == 200


# ---------------------------------------------------------------- no database needed


@pytest.mark.parametrize("value", ["lots", "3 per fortnight", "-1/minute"])
def test_a_malformed_limit_is_refused_at_startup(value: str) -> None:
    with pytest.raises(ValueError, match="is not a rate limit"):
        Settings(rate_limit=value)


async def test_scopes_that_cannot_pay_are_not_counted_and_admins_have_their_own_limit() -> None:
    limiter = MoneyRateLimiter("1/minute", "2/minute")
    for scope in ("cron", "system", "analyst", "auditor"):
        caller = Caller("machine", frozenset({scope}))
        assert all([(await limiter.take(caller, 1)).allowed for _ in range(5)])
    admin = Caller("ops", frozenset({"admin"}))
    assert [(await limiter.take(admin, 1)).allowed for _ in range(3)] == [True, True, False]
    # The same subject with a user token counts in the user bucket.
    assert [(await limiter.take(Caller("ops", frozenset({"user"})), 1)).allowed for _ in range(2)] == [True, False]


def test_the_cost_of_a_document_counts_every_limited_root_field() -> None:
    from graphql import parse

    document = parse(
        """mutation M { a: purchasePoints(input: $i) { x } ...F ... on Mutation { spendPoints(input: $s) { y } } }
        fragment F on Mutation { subscribe(input: $j) { z } refundPayment(input: $r) { w } }
        query Q { purchasePoints }"""
    )
    assert limited_fields(document, "M") == 3
    assert limited_fields(document, "Q") == 0
