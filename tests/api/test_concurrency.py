"""Concurrent commands on one wallet never overdraw it and never lose a write (SPEC §4, §7)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from gateways.tls import client_ssl_context
from tests.api.conftest import Api

SPEND = "mutation($id: String!) { spendPoints(input: {amount: 100, serviceId: $id}) { remainingBalance } }"
ADJUST = 'mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 1000, reason: "fund"}) { amount } }'
HISTORY = "{ wallet { usableBalance totalBalance lifetimeSpent transactions(first: 100) { totalCount items { type amount balanceBefore balanceAfter } } } }"


def spend_concurrently(urls: list[str], token: str, count: int, same_service: bool = False) -> list[dict]:
    def one(i: int) -> dict:
        with httpx.Client(timeout=120, verify=client_ssl_context()) as client:
            response = client.post(
                f"{urls[i % len(urls)]}/graphql",
                json={"query": SPEND, "variables": {"id": "svc-once" if same_service else f"svc-{i}"}},
                headers={"Authorization": f"Bearer {token}"},
            )
            return response.json()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def check_outcome(api: Api, user: str, results: list[dict]) -> None:
    succeeded = [r for r in results if not r.get("errors")]
    refused = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(succeeded) == 10
    assert refused == ["INSUFFICIENT_POINTS"] * 40
    assert sorted(r["data"]["spendPoints"]["remainingBalance"] for r in succeeded) == list(range(0, 1000, 100))
    api.settle_read_models()
    wallet = api.gql(HISTORY, user=user)["wallet"]
    assert (wallet["usableBalance"], wallet["totalBalance"], wallet["lifetimeSpent"]) == (0, 0, 1000)
    items = list(reversed(wallet["transactions"]["items"]))  # oldest first
    assert wallet["transactions"]["totalCount"] == 11
    assert [t["type"] for t in items] == ["ADJUSTMENT"] + ["USAGE"] * 10
    for earlier, later in zip(items, items[1:]):
        assert later["balanceBefore"] == earlier["balanceAfter"]
        assert later["balanceAfter"] == later["balanceBefore"] + later["amount"] >= 0


def test_fifty_concurrent_spends_on_one_wallet(api: Api, user: str) -> None:
    api.gql(ADJUST, {"u": user}, user="ops", scope="admin")
    results = spend_concurrently([api.url], api.token(user), 50)
    check_outcome(api, user, results)


def test_concurrent_spends_through_two_servers_on_one_database(api_factory, user: str) -> None:
    """Two processes' worth of ledgers: only the database's version check keeps them honest."""
    first, second = api_factory(), api_factory()
    first.gql(ADJUST, {"u": user}, user="ops", scope="admin")
    results = spend_concurrently([first.url, second.url], first.token(user), 50)
    check_outcome(first, user, results)


def test_concurrent_repeats_of_one_service_id_spend_once(api_factory, user: str) -> None:
    """The repeats race through two processes; the service's record collides on insert
    and every repeat answers the one spend that was written."""
    first, second = api_factory(), api_factory()
    first.gql(ADJUST, {"u": user}, user="ops", scope="admin")
    results = spend_concurrently([first.url, second.url], first.token(user), 20, same_service=True)
    assert [r.get("errors") for r in results] == [None] * 20
    assert {r["data"]["spendPoints"]["remainingBalance"] for r in results} == {900}
    first.settle_read_models()
    wallet = first.gql(HISTORY, user=user)["wallet"]
    assert (wallet["usableBalance"], wallet["lifetimeSpent"], wallet["transactions"]["totalCount"]) == (900, 100, 2)
