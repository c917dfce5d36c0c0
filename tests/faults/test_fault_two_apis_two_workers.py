"""Two `subledger serve` processes and two `subledger worker` processes on one PostgreSQL:
concurrent spends and purchases through both APIs while the workers (and one API,
advancing the clock) run the renewal day. No balance ever goes negative, every balance
is exactly what the answers said happened, and each period is charged once."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

from benchmarks import gql_client as q
from benchmarks.gql_client import Answer, GraphQL
from tests.faults.conftest import (
    assert_clean_failure,
    check_books,
    in_threads,
    new_users,
    periods_charged,
    sandbox_faults,
    set_clock,
    settle_read_models,
    subscribe_all,
    subscription_payments,
    wait_until,
    with_sandbox,
)

TRIAL_END = datetime.fromisoformat("2026-03-08T00:00:00+09:00")
REGULAR_POINTS = 5500  # 5,000 + 500 bonus
STARTER_POINTS = 1000
SPEND = 700


def test_two_apis_and_two_workers_on_one_database(shared_postgres, own_redis, deploy) -> None:
    deployment = deploy(shared_postgres, own_redis.url)
    sandbox = with_sandbox(deployment)
    # Purchases are at the gateway (0.1 s) while the renewal day's settle jobs run: with the
    # deployment's grace of 0 a settler could look one up before its charge lands and fail a
    # payment the gateway then charges (test_fault_stale_lookup_race.py). A few seconds of grace
    # leave such a charge to its own request, as the production grace (90 s) does.
    grace = {"SUBLEDGER_SETTLE_GRACE_SECONDS": "3"}
    apis = [deployment.serve(**grace), deployment.serve(**grace)]
    gql = GraphQL(apis[0].url, timeout=300)
    users = new_users(gql, 12, "two")
    for user, method in users:
        bought = gql.call(q.PURCHASE, {"p": "regular", "m": method, "k": None}, user=user)
        assert bought.ok, bought.body
    subscribers = users[:8]
    subscribe_all(gql, subscribers)
    sandbox_faults(sandbox, latencyMs=100)
    for _ in range(2):
        deployment.worker(SUBLEDGER_WORKER_TICK_SECONDS="1", SUBLEDGER_CHARGE_CONCURRENCY="4", **grace)

    answers: list[tuple[str, str, Answer]] = []
    stop = threading.Event()

    def load(index: int) -> None:
        user, method = users[index % len(users)]
        clients = [GraphQL(api.url, timeout=60) for api in apis]
        step = 0
        while not stop.is_set():
            step += 1
            client = clients[step % 2]
            if step % 5 == 0:
                answer = client.call(q.PURCHASE, {"p": "starter", "m": method, "k": uuid.uuid4().hex}, user=user)
                answers.append((user, "purchase", answer))
            else:
                answer = client.call(q.SPEND, {"a": SPEND, "s": uuid.uuid4().hex}, user=user)
                answers.append((user, "spend", answer))

    loaders = threading.Thread(target=in_threads, args=(24, load), daemon=True)  # two callers per wallet
    loaders.start()
    time.sleep(1)
    set_clock(shared_postgres, TRIAL_END)  # the workers' next tick runs the renewal day
    advanced = GraphQL(apis[1].url, timeout=300).call(
        q.ADVANCE, {"to": (TRIAL_END + timedelta(minutes=1)).isoformat()}, user="ops", scope="admin")
    assert advanced.ok, advanced.body  # ... and the second API runs it too, at the same time
    time.sleep(3)
    stop.set()
    loaders.join(timeout=120)

    for _, op, answer in answers:
        if answer.ok:
            if op == "spend":
                assert answer.data["spendPoints"]["remainingBalance"] >= 0, answer.body
        elif not (op == "spend" and answer.code == "INSUFFICIENT_POINTS"):
            assert_clean_failure(answer)
            raise AssertionError(f"{op} failed: {answer.code} {answer.message}")
    assert Counter(op for _, op, a in answers if a.ok)["spend"] > 50, "too little load to prove anything"

    def settled() -> bool:
        return all(subscription_payments(gql, user) == ["SUCCEEDED"] for user, _ in subscribers)

    wait_until(settled, 120, "the renewal day to be charged", interval=0.5)
    periods = periods_charged(sandbox)
    assert len(periods) == len(subscribers) and set(periods.values()) == {1}, periods
    settle_read_models(gql)
    for user, _ in users:
        mine = [(op, a) for u, op, a in answers if u == user and a.ok]
        expected = (REGULAR_POINTS + STARTER_POINTS * sum(op == "purchase" for op, _ in mine)
                    - SPEND * sum(op == "spend" for op, _ in mine))
        wallet = gql.call(q.WALLET, {"u": user}, user="ops", scope="admin").data["wallet"]
        assert wallet["totalBalance"] == expected >= 0, (user, wallet, expected)
    check_books(deployment, gql, [u for u, _ in users])
