"""Billing timelines with a PORTONE payment method, charged through PortOneGateway against the
sandbox's PortOne look-alike over real HTTP, on both databases: renewal, dunning, cancel-now
refund, points purchase, a charge whose answer is lost (settled by lookup), and `reconciliation`.
Every money assertion reads both sides: the look-alike's payments and the ledger, to the won."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateways.tls import client_ssl_context
from subledger.logging import QUIET_LOGGERS
from tests.api.conftest import JWT_SECRET, Api
from tests.integration.gateway_server import serve_sandbox
from tests.scenarios.helpers import CANCEL, advance, at, exact_share, seoul, subscribe, subscription

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test_portone_scenarios"
REGISTER = """mutation($k: String!, $c: String!) { registerPaymentMethod(input: {provider: PORTONE, authKey: $k, customerKey: $c}) {
  id provider cardMasked active } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) {
  payment { id status amount orderId } totalPoints } }"""
WALLET = "query { wallet { usableBalance } }"
PAYMENT = "query($id: ID!) { payment(id: $id) { id status amount refundedAmount orderId } }"
RECONCILE = """query { reconciliation { clean paymentsChecked gatewayOrdersChecked disagreements { finding provider orderId } } }"""


@pytest.fixture(scope="module")
def portone_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def store() -> str:
    """A store of its own per test, so the look-alike's listing holds only this test's payments."""
    return f"store-{uuid.uuid4()}"


@pytest.fixture
def portone(portone_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=portone_url, verify=client_ssl_context()) as client:
        client.post("/sandbox/faults", json={}).raise_for_status()
        yield client


@pytest.fixture
def api(api_factory: Any, portone_url: str, store: str) -> Api:
    return api_factory(
        gateway="sandbox,portone", portone_api_secret=SECRET, portone_store_id=store, portone_base_url=portone_url,
    )


def add_portone_card(api: Api, portone: httpx.Client, store: str, user: str, card: str = "4300000000000001") -> tuple[str, str]:
    """The browser SDK issues a billing key for the card; the front end registers it."""
    issued = portone.post(
        "/sandbox/portone/billing-keys", json={"cardNumber": card, "customerId": f"cust-{user}", "storeId": store}
    )
    issued.raise_for_status()
    key = issued.json()["billingKey"]
    method = api.gql(REGISTER, {"k": key, "c": f"cust-{user}"}, user=user)["registerPaymentMethod"]
    assert (method["provider"], method["cardMasked"], method["active"]) == ("PORTONE", "4300********0001", True)
    return method["id"], key


def at_portone(portone: httpx.Client, store: str) -> dict[str, dict[str, Any]]:
    """The look-alike's payments of this store, by paymentId (= the ledger's order id)."""
    payments = portone.get("/sandbox/portone/payments").json()["payments"]
    return {p["id"]: p for p in payments if p["storeId"] == store}


def paid_amounts(portone: httpx.Client, store: str) -> dict[str, int]:
    return {pid: p["amount"]["total"] for pid, p in at_portone(portone, store).items() if p["status"] != "FAILED"}


def ledger_paid(sub: dict) -> dict[str, int]:
    return {p["orderId"]: p["amount"] for p in sub["payments"] if p["status"] == "SUCCEEDED"}


def test_registration_checks_the_key_with_portone(api: Api, portone: httpx.Client, store: str, user: str) -> None:
    add_portone_card(api, portone, store, user)
    unknown = api.error(REGISTER, {"k": "billing-key-unknown", "c": f"cust-{user}"}, user=user)
    assert (unknown.code, unknown.extensions.get("providerCode")) == ("BAD_USER_INPUT", "BILLING_KEY_NOT_FOUND")


def test_portone_not_enabled_is_refused_naming_it(api_factory: Any, user: str) -> None:
    api = api_factory()  # the default: sandbox only
    refused = api.error(REGISTER, {"k": "billing-key-any", "c": f"cust-{user}"}, user=user)
    assert refused.code == "BAD_USER_INPUT" and "PORTONE is not enabled" in refused.errors[0]["message"]
    assert api.gql("query { paymentMethods { id } }", user=user)["paymentMethods"] == []


def test_renewal_charges_portone_each_period(api: Api, portone: httpx.Client, store: str, user: str) -> None:
    method, _ = add_portone_card(api, portone, store, user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert sub["status"] == "ACTIVE" and at(sub["currentPeriodStart"]) == seoul(2026, 4, 1, 10)
    assert [(p["status"], p["amount"]) for p in sub["payments"]] == [("SUCCEEDED", 9900), ("SUCCEEDED", 9900)]
    assert paid_amounts(portone, store) == ledger_paid(sub)
    assert all(p["status"] == "PAID" for p in at_portone(portone, store).values())


def test_dunning_with_portone_declines(api: Api, portone: httpx.Client, store: str, user: str) -> None:
    method, key = add_portone_card(api, portone, store, user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    portone.post(f"/sandbox/portone/billing-keys/{key}/outcome", json={"outcome": "INSUFFICIENT_FUNDS"}).raise_for_status()
    for day, failures in ((1, 1), (4, 2), (7, 3)):
        advance(api, seoul(2026, 4, day, 0, 30))
        assert subscription(api, user, sub["id"])["consecutiveFailures"] == failures
    sub = subscription(api, user, sub["id"])
    assert sub["status"] == "SUSPENDED"
    assert [(p["status"], p["failureCode"]) for p in sub["payments"]] == [("SUCCEEDED", None)] + [("FAILED", "INSUFFICIENT_FUNDS")] * 3
    held = at_portone(portone, store)
    failed = [p for p in sub["payments"] if p["status"] == "FAILED"]
    assert [(held[p["orderId"]]["status"], held[p["orderId"]]["failure"]["pgCode"]) for p in failed] == [
        ("FAILED", "REJECT_CARD_PAYMENT")] * 3
    assert paid_amounts(portone, store) == ledger_paid(sub) and sum(ledger_paid(sub).values()) == 9900


def test_cancel_now_refunds_through_portone(api: Api, portone: httpx.Client, store: str, user: str) -> None:
    method, _ = add_portone_card(api, portone, store, user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    when = seoul(2026, 3, 17, 14, 22) + timedelta(seconds=41)
    advance(api, when)
    start, end = at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])
    expected = exact_share(19900, end - when, end - start)
    sub = api.gql(CANCEL, {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False}}, user=user)["cancelSubscription"]
    [paid] = sub["payments"]
    assert (sub["status"], paid["status"], paid["refundedAmount"]) == ("CANCELED", "PARTIALLY_REFUNDED", expected)
    held = at_portone(portone, store)[paid["orderId"]]
    assert (held["status"], held["amount"]["total"], held["amount"]["cancelled"]) == ("PARTIAL_CANCELLED", 19900, expected)
    assert [c["totalAmount"] for c in held["cancellations"]] == [expected]


def test_points_purchase_through_portone(api: Api, portone: httpx.Client, store: str, user: str) -> None:
    method, _ = add_portone_card(api, portone, store, user)
    bought = api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]
    assert (bought["payment"]["status"], bought["payment"]["amount"], bought["totalPoints"]) == ("SUCCEEDED", 5000, 5500)
    assert paid_amounts(portone, store) == {bought["payment"]["orderId"]: 5000}
    assert api.gql(WALLET, user=user)["wallet"]["usableBalance"] == 5500


def test_a_lost_charge_answer_is_settled_by_lookup_once(
    api: Api, portone: httpx.Client, store: str, user: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:  # as the service keeps them (their lines hold URLs: subledger/logging.py)
        caplog.set_level(logging.WARNING, logger=name)
    method, key = add_portone_card(api, portone, store, user)
    portone.post("/sandbox/faults", json={"dropResponses": 1}).raise_for_status()
    bought = api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]
    assert (bought["payment"]["status"], bought["payment"]["amount"]) == ("SUCCEEDED", 5000)
    order_id = bought["payment"]["orderId"]
    requests = portone.get("/sandbox/portone/requests").json()["requests"]
    tries = [r for r in requests if r["path"] == f"/payments/{order_id}/billing-key"]
    lookups = [r for r in requests if r["method"] == "GET" and r["path"] == f"/payments/{order_id}"]
    assert len(tries) == 2 and lookups  # the lost answer, the retry refused ALREADY_PAID, then the lookup
    assert paid_amounts(portone, store) == {order_id: 5000}
    assert api.gql(WALLET, user=user)["wallet"]["usableBalance"] == 5500
    assert "gateway_retry provider=PORTONE operation=charge" in caplog.text  # the retry was logged...
    leaks = [f"{r.name}: {r.getMessage()}" for r in caplog.records if SECRET in r.getMessage() or key in r.getMessage()]
    assert leaks == []  # ...without the API secret or the billing key


def test_reconciliation_lists_portone_payments(
    api: Api, portone: httpx.Client, portone_url: str, store: str, user: str, database_url: str,
) -> None:
    method, key = add_portone_card(api, portone, store, user)
    bought = api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]
    api.settle_read_models()
    report = api.gql(RECONCILE, user="auditor-1", scope="auditor")["reconciliation"]
    assert (report["clean"], report["paymentsChecked"], report["gatewayOrdersChecked"]) == (True, 1, 1)
    # A payment made at PortOne behind the ledger's back (e.g. from PortOne's console).
    stray = f"stray-{uuid.uuid4()}"
    charged = portone.post(
        f"/payments/{stray}/billing-key", headers={"Authorization": f"PortOne {SECRET}"},
        json={"storeId": store, "billingKey": key, "orderName": "stray", "amount": {"total": 777}, "currency": "KRW"},
    )
    assert charged.status_code == 200
    report = api.gql(RECONCILE, user="auditor-1", scope="auditor")["reconciliation"]
    assert report["clean"] is False
    assert [(d["finding"], d["provider"], d["orderId"]) for d in report["disagreements"]] == [
        ("UNKNOWN_ORDER", "PORTONE", stray)]
    assert bought["payment"]["orderId"] in paid_amounts(portone, store)
    # A refund made at PortOne behind the ledger's back: the amounts now differ.
    order_id = bought["payment"]["orderId"]
    portone.post(f"/payments/{order_id}/cancel", headers={"Authorization": f"PortOne {SECRET}"},
                 json={"storeId": store, "amount": 1000, "reason": "console"}).raise_for_status()
    # `subledger audit reconcile`, the same report from the command line.
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET,
           "SUBLEDGER_CLOCK": "test", "SUBLEDGER_GATEWAY": "sandbox,portone", "SUBLEDGER_PORTONE_API_SECRET": SECRET,
           "SUBLEDGER_PORTONE_STORE_ID": store, "SUBLEDGER_PORTONE_BASE_URL": portone_url}
    audit = subprocess.run([sys.executable, "-m", "subledger.cli", "audit", "reconcile"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert audit.returncode == 1, audit.stderr
    lines = sorted(line.split(" ledger=")[0] for line in audit.stdout.splitlines())
    assert lines == [f"REFUNDS_DIFFER provider=PORTONE order={order_id} payment={bought['payment']['id']}",
                     f"UNKNOWN_ORDER provider=PORTONE order={stray} payment=-"]
    assert "cancelled 1000" in audit.stdout
    assert SECRET not in audit.stdout + audit.stderr and key not in audit.stdout + audit.stderr
