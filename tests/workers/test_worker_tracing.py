"""A `subledger worker` process with SUBLEDGER_OTLP_ENDPOINT exports its jobs' traces to a real
OTLP/HTTP receiver (tests/otlp_receiver.py): a renewal charged by the worker is one trace, the
job's span the root of the renewal's ledger commands and its gateway call (PostgreSQL, Redis,
the sandbox gateway over HTTP)."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.otlp_receiver import Received, ancestors, running_receiver
from tests.scenarios.helpers import seoul, subscribe
from tests.workers.conftest import wait_for

PAYMENTS = "query($u: ID) { subscriptions(userId: $u) { payments { id status amount orderId } } }"


@pytest.fixture
def receiver() -> Iterator[Received]:
    with running_receiver() as received:
        yield received


@pytest.fixture
def fleet(api_factory: Any, sandbox_server: tuple[str, Any]) -> tuple[Api, Any, str]:
    url, engine = sandbox_server
    return api_factory(sandbox_url=url), engine, url


def test_a_renewal_charged_by_the_worker_is_one_trace_rooted_at_its_job(
    fleet: tuple[Api, Any, str], start_worker: Any, receiver: Received, user: str
) -> None:
    api, engine, url = fleet
    subscribe(api, user, "basic", paymentMethodId=api.add_card(user))
    billing_keys = [m["billing_key"] for m in api.built.ledger.customer(user).payment_methods.values()]
    api.built.clock.advance_to(seoul(2026, 3, 8))  # the trial's end: only the worker charges it
    worker = start_worker(
        SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_OTLP_ENDPOINT=receiver.url, SUBLEDGER_OTLP_SERVICE_NAME="subledger-worker"
    )

    def paid() -> list[dict[str, Any]]:
        subs = api.gql(PAYMENTS, {"u": user}, user="ops", scope="admin")["subscriptions"]
        return [p for sub in subs for p in sub["payments"] if p["status"] == "SUCCEEDED"]

    payments = wait_for(paid, timeout=120, what="the worker's renewal charge")
    # Both sides of the money, to the won: the gateway's record and the ledger's.
    assert [(p["amount"], p["orderId"]) for p in payments] == [(9900, payments[0]["orderId"])] == [
        (c["amount"], c["orderId"]) for c in engine.charges() if c["orderId"] == payments[0]["orderId"]
    ]
    worker.send_signal(signal.SIGTERM)  # its shutdown flushes the spans still queued
    assert worker.wait(timeout=60) == 0

    spans = receiver.spans()
    assert spans and {s["service"] for s in spans} == {"subledger-worker"}
    charge = [s for s in spans if s["attributes"].get("subledger.gateway.operation") == "charge"]
    assert len(charge) == 1
    trace = [s for s in spans if s["trace_id"] == charge[0]["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}
    roots = [s for s in trace if not s["parent_id"]]
    assert [(r["name"], r["attributes"]["subledger.job"]) for r in roots] == [("job", "charge_due_subscriptions")]
    assert ancestors(charge[0], by_id)[-1] == "job"
    assert roots[0]["attributes"]["subledger.job.succeeded"] == 1
    commands = [s for s in trace if s["name"] == "ledger.command"]
    assert commands and all(ancestors(c, by_id)[-1] == "job" for c in commands)
    exported = receiver.raw()
    assert all(key and key.encode() not in exported for key in billing_keys)
