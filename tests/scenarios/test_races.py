"""Racing callers and racing servers: one live subscription per user, one SUCCEEDED
payment per period (SPEC §3, §7). Two servers share one database and one sandbox."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from gateways.tls import client_ssl_context
from tests.scenarios.helpers import ADMIN, ADVANCE, CURRENT, SUBSCRIBE, advance, seoul, subscribe, subscription


def post_all(calls: list[tuple[str, str, dict, str]]) -> list[dict]:
    """(url, query, variables, token) posted at once, one thread each."""
    def one(call: tuple[str, str, dict, str]) -> dict:
        url, query, variables, token = call
        with httpx.Client(timeout=120, verify=client_ssl_context()) as client:
            response = client.post(f"{url}/graphql", json={"query": query, "variables": variables},
                                   headers={"Authorization": f"Bearer {token}"})
            return response.json()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def test_racing_subscribes_leave_one_live_subscription(api_factory: Any, user: str) -> None:
    first = api_factory()
    second = api_factory(sandbox=first.sandbox)
    method = first.add_card(user)
    token = first.token(user)
    calls = [
        (server.url, SUBSCRIBE, {"i": {"planId": plan, "paymentMethodId": method, "skipTrial": True}}, token)
        for server in (first, second) for plan in ("basic", "premium", "master")
    ]
    results = post_all(calls)
    won = [r["data"]["subscribe"] for r in results if not r.get("errors")]
    refused = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(won) == 1 and refused == ["CONFLICT"] * 5
    assert first.gql(CURRENT, user=user)["currentSubscription"]["id"] == won[0]["id"]
    assert len(first.sandbox.charges()) == 1  # the refused ones were never charged


def test_two_servers_running_the_same_renewal_run_charge_each_period_once(api_factory: Any, user: str) -> None:
    first = api_factory()
    second = api_factory(sandbox=first.sandbox)
    users = [f"{user}-{i}" for i in range(6)]
    subs = {u: subscribe(first, u, "basic", paymentMethodId=first.add_card(u), skipTrial=True)["id"] for u in users}
    advance(first, seoul(2026, 3, 31, 23, 59))
    token = first.token("ops", "admin")
    to = {"to": seoul(2026, 4, 1, 0, 30).isoformat()}
    results = post_all([(first.url, ADVANCE, to, token), (second.url, ADVANCE, to, token)])
    assert all(not r.get("errors") for r in results), [r.get("errors") for r in results]
    charged = [run for r in results for run in r["data"]["advanceTestClock"] if run["job"] == "charge_due_subscriptions"]
    assert sum(run["succeeded"] for run in charged) == 6  # between them, each renewal charged by one server
    for u, sub_id in subs.items():
        payments = subscription(first, u, sub_id)["payments"]
        assert [p["status"] for p in payments] == ["SUCCEEDED", "SUCCEEDED"], u
    orders = [c["orderId"] for c in first.sandbox.charges()]
    assert len(orders) == 12 == len(set(orders))
    again = first.gql("mutation { runScheduledJobs { job succeeded } }", **ADMIN)["runScheduledJobs"]
    assert all(run["succeeded"] == 0 for run in again if run["job"] == "charge_due_subscriptions")


def test_a_server_whose_test_clock_another_moved_past_a_step_carries_on(database_url: str) -> None:
    """The interleaving the test above can meet only by chance, made certain: while one server
    advances the test clock through 00:00 and 09:00, another moves it to the end as soon as the
    first has saved its 00:00 step. The first then finds the clock past 09:00; it runs that step's
    jobs and ends without an error, the clock where the other put it."""
    from domain.clock import TEST_CLOCK_ID, TestClockState
    from subledger.core import build_core
    from subledger.settings import Settings

    settings = Settings(database_url=database_url, projections_in_process=False, clock="test",
                        clock_start=seoul(2026, 3, 31, 23, 59))
    first, second = build_core(settings), build_core(settings)
    try:
        end = seoul(2026, 4, 1, 9, 30)
        moved: list[bool] = []

        def the_other_server_goes_first(recordings: list[Any]) -> None:
            if not moved and any(r.domain_event.originator_id == TEST_CLOCK_ID for r in recordings):
                moved.append(True)
                second.ledger.advance_test_clock(end)

        first.clock.now()  # both see 23:59
        second.clock.now()
        first.ledger.listeners.append(the_other_server_goes_first)
        runs = asyncio.run(first.jobs.advance_test_clock(end))
        assert moved
        assert sorted({run["ran_at"] for run in runs}) == [seoul(2026, 4, 1, 0, 0), seoul(2026, 4, 1, 9, 0)]
        state = second.ledger.load(TestClockState, TEST_CLOCK_ID)
        assert state is not None and state.now == end
        assert first.clock.now() == end
    finally:
        for built in (first, second):
            built.ledger.close()
            built.view_db.close()
            built.executor.shutdown()
