"""The API process (`subledger serve`) SIGKILLed while purchases are in flight at the
gateway. After a restart and the next settle run, every purchase the gateway charged is
credited exactly once, and nothing the gateway did not charge is credited."""
from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from benchmarks import gql_client as q
from benchmarks.gql_client import GraphQL
from tests.faults.conftest import (
    check_books,
    gateway_charges,
    in_threads,
    new_users,
    sandbox_faults,
    settle_read_models,
    with_sandbox,
)

STARTER_POINTS = 1000  # the starter package: 1,000 points for 1,000 won, no bonus


def test_api_killed_during_concurrent_purchases(shared_postgres, deploy) -> None:
    deployment = deploy(shared_postgres)
    sandbox = with_sandbox(deployment)
    first = deployment.serve()
    gql = GraphQL(first.url)
    users = new_users(gql, 8, "kill")
    sandbox_faults(sandbox, latencyMs=400)  # each charge is in flight for 0.4 s
    stop = threading.Event()
    sent = defaultdict(int)

    def buy(index: int) -> None:
        user, method = users[index]
        client = GraphQL(first.url, timeout=30)
        while not stop.is_set():
            answer = client.call(q.PURCHASE, {"p": "starter", "m": method, "k": uuid.uuid4().hex}, user=user)
            sent[user] += 1
            if answer.code == q.TRANSPORT:
                return  # the server is gone

    loaders = threading.Thread(target=in_threads, args=(len(users), buy), daemon=True)
    loaders.start()
    time.sleep(2.5)
    first.kill()
    stop.set()
    loaders.join(timeout=60)
    assert sum(sent.values()) > len(users), "too few purchases before the kill"

    second = deployment.serve()
    gql = GraphQL(second.url, timeout=300)
    sandbox_faults(sandbox)
    # A minute later the PENDING purchases are stale; the next midnight run settles them.
    now = datetime.fromisoformat(gql.call(q.NOW).data["clock"]["now"])
    settled = gql.call(q.ADVANCE, {"to": (now + timedelta(days=1)).isoformat()}, user="ops", scope="admin")
    assert settled.ok, settled.body
    settle_read_models(gql)

    charged = {c["orderId"]: c["amount"] for c in gateway_charges(sandbox)}
    assert charged, "the gateway charged nothing before the kill"
    for user, _ in users:
        answer = gql.call(q.PAYMENTS, {"u": user}, user="ops", scope="admin")
        assert answer.ok, answer.body
        payments = answer.data["payments"]
        assert len(payments) < 50, "more payments than one page: raise the page size"
        succeeded = [p for p in payments if p["status"] == "SUCCEEDED"]
        assert not [p for p in payments if p["status"] == "PENDING"], payments
        for payment in payments:
            at_gateway = payment["orderId"] in charged
            assert at_gateway == (payment["status"] == "SUCCEEDED"), payment
            if at_gateway:
                assert charged[payment["orderId"]] == payment["amount"]
        wallet = gql.call(q.WALLET, {"u": user}, user="ops", scope="admin").data["wallet"]
        assert wallet["totalBalance"] == STARTER_POINTS * len(succeeded), (user, wallet, len(succeeded))
    ledger_orders = set()
    for user, _ in users:
        ledger_orders |= {p["orderId"] for p in gql.call(q.PAYMENTS, {"u": user}, user="ops", scope="admin")
                          .data["payments"]}
    assert set(charged) <= ledger_orders, set(charged) - ledger_orders
    check_books(deployment, gql, [u for u, _ in users])
