"""PostgreSQL restarted twice (`pg_ctl restart -m fast`: every session cut), then stopped for
4 s, while a `subledger serve` process takes spends and purchases and runs a renewal day:
every failed answer carries a contract code and leaks nothing, the API recovers by itself
(no restart of its own), and the books balance to the won afterwards."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta

from benchmarks import gql_client as q
from benchmarks.gql_client import Answer, GraphQL
from tests.faults.conftest import (
    assert_clean_failure,
    check_books,
    in_threads,
    new_users,
    periods_charged,
    settle_read_models,
    sandbox_faults,
    subscribe_all,
    subscription_payments,
    wait_until,
    with_sandbox,
)

TRIAL_END = datetime.fromisoformat("2026-03-08T00:00:00+09:00")  # trials started on the 1st end here
GRACE_SECONDS = 5


def advance(gql: GraphQL, to: datetime) -> Answer:
    return gql.call(q.ADVANCE, {"to": to.isoformat()}, user="ops", scope="admin")


def test_postgres_restarted_twice_during_spends_purchases_and_renewals(own_postgres, deploy) -> None:
    deployment = deploy(own_postgres.url)
    sandbox = with_sandbox(deployment)
    # The deployment's settle grace is 0 (fault tests settle what they left at once), but here
    # purchases take 1.5 s at the gateway while the renewal day's settle job runs: with no grace
    # it may look up a purchase whose charge is still on its way, find no order and fail a
    # payment the gateway then charges (the race of test_fault_stale_lookup_race.py). The
    # production grace is 90 s; a few seconds cover a 1.5 s charge.
    api = deployment.serve(SUBLEDGER_SETTLE_GRACE_SECONDS=str(GRACE_SECONDS))
    gql = GraphQL(api.url)
    users = new_users(gql, 10, "pg")
    for user, method in users:
        bought = gql.call(q.PURCHASE, {"p": "regular", "m": method, "k": None}, user=user)
        assert bought.ok, bought.body
    subscribers = users[:8]
    subscribe_all(gql, subscribers)
    # Renewal charges take 1.5 s at the gateway: the first restart lands while they are in flight.
    sandbox_faults(sandbox, latencyMs=1500)

    answers: list[tuple[str, Answer]] = []
    stop = threading.Event()

    def load(index: int) -> None:
        user, method = users[index]
        client = GraphQL(api.url, timeout=60)
        step = 0
        while not stop.is_set():
            step += 1
            if step % 6 == 0:
                answer = client.call(q.PURCHASE, {"p": "starter", "m": method, "k": uuid.uuid4().hex}, user=user)
                answers.append(("purchase", answer))
            else:
                answer = client.call(q.SPEND, {"a": 100, "s": uuid.uuid4().hex}, user=user)
                answers.append(("spend", answer))
            time.sleep(0.05)

    renewal_day: list[Answer] = []
    loaders = threading.Thread(target=in_threads, args=(6, load), daemon=True)
    loaders.start()
    time.sleep(1.5)
    renewal = threading.Thread(target=lambda: renewal_day.append(advance(GraphQL(api.url, 600), TRIAL_END)))
    renewal.start()
    time.sleep(1.0)
    before_first = len(answers)
    own_postgres.restart()
    time.sleep(3)
    before_second = len(answers)
    own_postgres.restart()
    time.sleep(3)
    own_postgres.down_for(4)  # and once down for longer than a request usually waits
    time.sleep(3)
    stop.set()
    loaders.join(timeout=120)
    renewal.join(timeout=300)
    assert api.alive(), "the API process died with the database"
    assert before_first < before_second < len(answers), "the load did not run across both restarts"

    failed = [answer for _, answer in answers + [(None, a) for a in renewal_day] if not answer.ok]
    for answer in failed:
        if answer.code not in ("INSUFFICIENT_POINTS",):
            assert_clean_failure(answer)
    assert not [a for a in failed if a.code in (q.TRANSPORT, q.NO_CODE)]

    # Recovery without restarting the API: the next requests succeed.
    user, method = users[0]
    wait_until(lambda: gql.call(q.WALLET, {"u": user}, user=user).ok, 30, "the API to answer again")
    spent = gql.call(q.PURCHASE, {"p": "starter", "m": method, "k": uuid.uuid4().hex}, user=user)
    assert spent.ok, spent.body

    # The next days' runs settle what the restarts left PENDING, and retry what never reached the gateway:
    # once the grace has passed for every charge the load started (wall clock, as the settle job counts it).
    time.sleep(GRACE_SECONDS)
    sandbox_faults(sandbox)
    now = datetime.fromisoformat(gql.call(q.NOW).data["clock"]["now"])
    for days in (1, 4):
        done = advance(gql, max(now, TRIAL_END) + timedelta(days=days, minutes=5))
        assert done.ok, done.body
    settle_read_models(gql)
    periods = periods_charged(sandbox)
    charged_subs = {period.rsplit("-p", 1)[0] for period in periods}
    assert len(charged_subs) == len(subscribers) and set(periods.values()) == {1}, periods
    for user, _ in subscribers:
        statuses = subscription_payments(gql, user)
        assert "SUCCEEDED" in statuses and "PENDING" not in statuses, (user, statuses)
    check_books(deployment, gql, [u for u, _ in users])

