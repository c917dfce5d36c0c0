"""Renewals on arq under races, crashes and gateway faults: every period is charged
exactly once (SPEC §3, §5, §6). Real Redis, PostgreSQL, `subledger worker`
processes and the sandbox gateway over HTTP."""
from __future__ import annotations

import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from gateways.sandbox_engine import Faults
from tests.api.conftest import Api
from tests.scenarios.helpers import seoul, subscribe
from tests.workers.conftest import wait_for

PAYMENTS = "query($u: ID) { subscriptions(userId: $u) { id status payments { status orderId } } }"
TRIAL_END_DAY = seoul(2026, 3, 8)  # trials started 2026-03-01 10:00 end on the 8th: due at its 00:00 run


def due_subscriptions(api: Api, count: int) -> list[str]:
    """`count` users on a basic trial with a good card: all due at TRIAL_END_DAY's run."""

    def one(i: int) -> str:
        user = f"due-{i}-{api.url[-5:]}"
        return subscribe(api, user, "basic", paymentMethodId=api.add_card(user))["userId"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def charges_per_period(engine: Any) -> Counter[str]:
    """DONE charges at the gateway per subscription period (order ids sub-<id>-p<n>-a<k>)."""
    return Counter(charge["orderId"].rsplit("-a", 1)[0] for charge in engine.charges())


def ledger_payments(api: Api, users: list[str]) -> dict[str, list[str]]:
    statuses = {}
    for user in users:
        for sub in api.gql(PAYMENTS, {"u": user}, user="ops", scope="admin")["subscriptions"]:
            statuses[user] = [p["status"] for p in sub["payments"]]
    return statuses


def order_statuses(api: Api, user: str) -> list[dict[str, str]]:
    return [p for sub in api.gql(PAYMENTS, {"u": user}, user="ops", scope="admin")["subscriptions"] for p in sub["payments"]]


def all_settled(api: Api, users: list[str]) -> bool:
    return all(statuses == ["SUCCEEDED"] for statuses in ledger_payments(api, users).values())


@pytest.fixture
def fleet(api_factory: Any, sandbox_server: tuple[str, Any]) -> tuple[Api, Any, str]:
    url, engine = sandbox_server
    return api_factory(sandbox_url=url), engine, url


def test_two_workers_on_the_same_cron_charge_each_period_once(fleet, start_worker) -> None:
    api, engine, url = fleet
    users = due_subscriptions(api, 200)
    # Slow gateway, few slots: runs of successive ticks overlap, on both workers.
    engine.set_faults(Faults(latency_ms=30))
    api.built.clock.advance_to(TRIAL_END_DAY)
    for _ in range(2):
        start_worker(SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_CHARGE_CONCURRENCY="8")
    wait_for(lambda: all_settled(api, users), timeout=240, what="every trial-end charge")
    periods = charges_per_period(engine)
    assert len(periods) == 200 and set(periods.values()) == {1}
    assert all(statuses == ["SUCCEEDED"] for statuses in ledger_payments(api, users).values())


def test_dropped_responses_and_no_lookups_leave_pending_then_settle_once(fleet, start_worker) -> None:
    api, engine, url = fleet
    users = due_subscriptions(api, 30)
    # Every charge happens at the gateway but its answer is lost, and lookups fail too:
    # the outcome stays unknown, so the payments must stay PENDING (never FAILED, never re-sent).
    engine.set_faults(Faults(drop_responses=10_000, lookups_down=True))
    api.built.clock.advance_to(TRIAL_END_DAY)
    worker = start_worker(SUBLEDGER_SANDBOX_URL=url)
    wait_for(lambda: len(engine.charges()) == 30, timeout=120, what="the gateway to charge every order")
    wait_for(
        lambda: all(s == ["PENDING"] for s in ledger_payments(api, users).values()), timeout=60, what="PENDING payments"
    )
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    engine.set_faults(Faults())
    # The next day's run: the settle job asks the gateway first, before any new attempt.
    api.built.clock.advance_to(TRIAL_END_DAY + timedelta(days=1))
    start_worker(SUBLEDGER_SANDBOX_URL=url)
    wait_for(lambda: all_settled(api, users), timeout=120, what="the settle run")
    assert set(charges_per_period(engine).values()) == {1} and len(engine.charges()) == 30


def test_a_worker_killed_mid_run_leaves_nothing_the_next_run_does_not_finish(fleet, start_worker) -> None:
    api, engine, url = fleet
    users = due_subscriptions(api, 500)
    engine.set_faults(Faults(latency_ms=20))
    api.built.clock.advance_to(TRIAL_END_DAY)
    worker = start_worker(SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_CHARGE_CONCURRENCY="8")
    wait_for(lambda: len(engine.charges()) >= 100, timeout=120, what="the run to be under way")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    charged_at_kill = len(engine.charges())
    assert charged_at_kill < 500, "the run finished before the kill; the test proves nothing"
    # Payments caught in flight are PENDING; a minute later they are stale and the next
    # run looks them up before charging anything else.
    api.built.clock.advance_to(TRIAL_END_DAY + timedelta(minutes=2))
    start_worker(SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_CHARGE_CONCURRENCY="8")

    def finished() -> bool:
        return all(s and s[-1] in ("SUCCEEDED", "FAILED") for s in ledger_payments(api, users).values())

    wait_for(finished, timeout=300, what="the next run to finish")
    statuses = ledger_payments(api, users)
    # A charge recorded PENDING whose request never left the killed worker is not at the
    # gateway: it settles FAILED (NETWORK_ERROR) and dunning retries it 3 days later.
    # Runs tick every second and arq runs up to 4 at once (max_jobs), so up to 4 x 8
    # charges can be in flight at the kill; whatever the count, FAILED means never sent.
    lost_in_flight = [u for u, s in statuses.items() if s != ["SUCCEEDED"]]
    assert len(lost_in_flight) <= 4 * 8
    at_gateway = {charge["orderId"] for charge in engine.charges()}
    failed_orders = [p["orderId"] for u in lost_in_flight for p in order_statuses(api, u) if p["status"] == "FAILED"]
    assert len(failed_orders) == len(lost_in_flight) and not at_gateway & set(failed_orders)
    if lost_in_flight:
        api.built.clock.advance_to(TRIAL_END_DAY + timedelta(days=3))
        wait_for(lambda: all(s[-1] == "SUCCEEDED" for s in ledger_payments(api, users).values()), timeout=120,
                 what="the retry day")
    periods = charges_per_period(engine)
    assert len(periods) == 500 and set(periods.values()) == {1}
