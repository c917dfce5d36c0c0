"""OpenTelemetry tracing over real HTTP: the service (uvicorn) exports over OTLP/HTTP to a
real receiver process (tests/otlp_receiver.py), on SQLite and PostgreSQL.

One purchase is one trace: the request's span, the GraphQL operation, its resolver, the
ledger's commands and the gateway's calls, each the child of the one before; the request
id is the one answered in X-Request-ID; no key, token or secret is in the exported bytes.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.tracing import NO_TRACER
from tests.api.conftest import GOOD_CARD, JWT_SECRET, Api
from tests.integration.test_connection_refusals import closed_port
from tests.integration.test_production_mode import run
from tests.otlp_receiver import Received, ancestors, running_receiver

REGISTER_INLINE = """mutation Register { registerPaymentMethod(input: {provider: SANDBOX, authKey: "%s", customerKey: "%s"}) { id } }"""
PURCHASE = """mutation Buy($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) {
  payment { id status amount orderId } totalPoints } }"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Received]:
    with running_receiver() as received:
        yield received


def post(api: Api, query: str, variables: dict[str, Any], user: str, request_id: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.token(user)}", "X-Request-ID": request_id}
    response = api.client.post(f"{api.url}/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert "errors" not in response.json(), response.json()
    return response


def test_a_purchase_is_one_trace_of_request_operation_commands_and_gateway_calls(
    api_factory: Any, receiver: Received, user: str
) -> None:
    receiver.clear()
    api = api_factory(otlp_endpoint=receiver.url, otlp_service_name="subledger-test")
    token = api.token(user)
    registered = post(api, REGISTER_INLINE % (GOOD_CARD, f"cust-{user}"), {}, user, f"reg-{uuid.uuid4().hex}")
    method = registered.json()["data"]["registerPaymentMethod"]["id"]
    request_id = f"buy-{uuid.uuid4().hex}"
    bought = post(api, PURCHASE, {"m": method}, user, request_id)
    assert bought.headers["X-Request-ID"] == request_id
    payment = bought.json()["data"]["purchasePoints"]["payment"]
    # Both sides of the money, to the won: the gateway's record and the ledger's.
    assert (payment["status"], payment["amount"]) == ("SUCCEEDED", 5000)
    assert [c["amount"] for c in api.sandbox.charges() if c["orderId"] == payment["orderId"]] == [5000]
    ledger_payment = api.built.ledger.payment(payment["id"])
    assert ledger_payment is not None and ledger_payment.amount == 5000
    billing_key = api.built.ledger.customer(user).payment_methods[method]["billing_key"]
    assert billing_key
    api.settle_read_models()
    api.close()  # the lifespan's shutdown flushes the batch: nothing is waited for here

    spans = receiver.spans()
    roots = [s for s in spans if s["attributes"].get("subledger.request_id") == request_id and not s["parent_id"]]
    assert [r["name"] for r in roots] == ["POST /graphql"]
    root = roots[0]
    assert root["service"] == "subledger-test" and root["attributes"]["http.response.status_code"] == 200
    trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}
    named = {s["name"]: s for s in trace}
    operation = named["GraphQL Query: Buy"]
    assert operation["parent_id"] == root["span_id"]
    assert operation["attributes"]["subledger.request_id"] == request_id
    assert "query" not in operation["attributes"]
    assert named["GraphQL Parsing"]["parent_id"] == named["GraphQL Validation"]["parent_id"] == operation["span_id"]
    resolver = named["GraphQL Resolving: purchasePoints"]
    assert resolver["parent_id"] == operation["span_id"]
    assert not any(key.startswith("graphql.param") for s in trace for key in s["attributes"])

    commands = [s for s in trace if s["name"] == "ledger.command"]
    command_names = {s["attributes"]["subledger.command"] for s in commands}
    # Recorded before the gateway is asked, settled from its answer: two commands.
    assert command_names == {"PointsPurchases.begin_points_purchase", "PaymentBook.settle_charge"}, command_names
    for command in commands:
        assert ancestors(command, by_id)[-3:] == ["GraphQL Resolving: purchasePoints", "GraphQL Query: Buy", "POST /graphql"]
    saves = [s for s in trace if s["name"] == "ledger.save"]
    assert saves and all(by_id[s["parent_id"]]["name"] == "ledger.command" for s in saves)

    calls = [s for s in trace if s["name"] == "gateway.call"]
    assert [c["attributes"]["subledger.gateway.operation"] for c in calls] == ["charge"]
    call = calls[0]
    assert call["attributes"]["subledger.gateway.provider"] == "SANDBOX"
    assert call["attributes"]["http.response.status_code"] == 200
    assert "GraphQL Resolving: purchasePoints" in ancestors(call, by_id)
    tries = [s for s in trace if s["name"] == "gateway.http"]
    assert [(t["parent_id"], t["attributes"]["http.request.method"]) for t in tries] == [(call["span_id"], "POST")]

    # The read models follow the ledger: a span per batch they apply.
    batches = [s for s in spans if s["name"] == "projection.batch" and s["service"] == "subledger-test"]
    assert {"payments", "wallet_history"} <= {b["attributes"]["subledger.projection"] for b in batches}
    assert all(b["attributes"]["subledger.events"] > 0 for b in batches)

    # The registration's own trace holds its gateway call: issue_billing_key.
    issued = [s for s in spans if s["attributes"].get("subledger.gateway.operation") == "issue_billing_key"]
    assert len(issued) == 1 and issued[0]["trace_id"] != root["trace_id"]

    exported = receiver.raw()
    for secret in (billing_key, GOOD_CARD, token, JWT_SECRET, "test_sk_sandbox", "Bearer", "authKey"):
        assert secret.encode() not in exported, secret


def test_without_the_subledger_endpoint_nothing_is_traced_or_sent(
    api_factory: Any, receiver: Received, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OpenTelemetry SDK's own variable alone does not turn tracing on (one setting, documented)."""
    receiver.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    api = api_factory()
    assert api.built.tracing is None and api.built.ledger.tracer is NO_TRACER
    method = api.add_card(user)
    bought = post(api, PURCHASE, {"m": method}, user, f"buy-{uuid.uuid4().hex}")
    assert bought.json()["data"]["purchasePoints"]["payment"]["status"] == "SUCCEEDED"
    api.close()
    assert receiver.spans() == [] and receiver.raw() == b""


def test_a_refused_command_says_which_error_but_not_its_message(api_factory: Any, receiver: Received, user: str) -> None:
    receiver.clear()
    api = api_factory(otlp_endpoint=receiver.url)
    spend = 'mutation Spend { spendPoints(input: {amount: 700, serviceId: "reading-9"}) { pointsSpent } }'
    body = api.client.post(f"{api.url}/graphql", json={"query": spend}, headers={"Authorization": f"Bearer {api.token(user)}"}).json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INSUFFICIENT_POINTS"
    api.close()
    commands = [s for s in receiver.spans() if s["name"] == "ledger.command"]
    assert [c["attributes"]["subledger.command"] for c in commands] == ["WalletCommands.spend_points"]
    assert commands[0]["status"] == "STATUS_CODE_ERROR"
    assert commands[0]["attributes"]["error.type"] == "InsufficientPoints"
    assert commands[0]["attributes"]["subledger.error_code"] == "INSUFFICIENT_POINTS"
    assert error["message"].encode() not in receiver.raw()


def test_an_endpoint_that_is_no_url_is_refused_in_one_line(tmp_path: Any) -> None:
    done = run({"SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}", "SUBLEDGER_OTLP_ENDPOINT": "collector:4318"}, "serve")
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subledger: SUBLEDGER_OTLP_ENDPOINT"), done.stderr
    assert "http://" in lines[0]


def test_a_collector_that_is_down_fails_no_request(
    api_factory: Any, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans queue in the background; the answers and the money are as without tracing. The
    SDK's export timeout bounds the stop (here 1 s, by the SDK's own variable)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    api = api_factory(otlp_endpoint=f"http://127.0.0.1:{closed_port()}")
    method = api.add_card(user)
    bought = post(api, PURCHASE, {"m": method}, user, f"buy-{uuid.uuid4().hex}")
    payment = bought.json()["data"]["purchasePoints"]["payment"]
    assert (payment["status"], payment["amount"]) == ("SUCCEEDED", 5000)
    assert [c["amount"] for c in api.sandbox.charges() if c["orderId"] == payment["orderId"]] == [5000]
    api.close()


def test_jobs_run_by_a_request_are_spans_of_its_trace(api_factory: Any, receiver: Received) -> None:
    receiver.clear()
    api = api_factory(otlp_endpoint=receiver.url)
    advance = "mutation Advance($to: DateTime!) { advanceTestClock(to: $to) { job } }"
    ran = api.gql(advance, {"to": "2026-03-02T10:00:00+09:00"}, user="ops", scope="admin")["advanceTestClock"]
    assert ran  # the 00:00 and 09:00 runs of 2026-03-02
    api.close()
    spans = receiver.spans()
    by_id = {s["span_id"]: s for s in spans}
    jobs = [s for s in spans if s["name"] == "job"]
    assert sorted(j["attributes"]["subledger.job"] for j in jobs) == sorted(run["job"] for run in ran)
    for job in jobs:
        assert ancestors(job, by_id) == ["GraphQL Resolving: advanceTestClock", "GraphQL Query: Advance", "POST /graphql"]
