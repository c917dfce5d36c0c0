"""PortOneGateway against the sandbox's PortOne look-alike served over real HTTP (uvicorn):
each endpoint's method, path, headers and body as PortOne's reference documents them (the
look-alike records every request), each documented error type's mapping, and exactly-once
charges and refunds when answers are lost."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from domain.ports import ChargeStatus, DeclineCode, GatewayError, RefundStatus
from gateway_server import serve_sandbox
from gateways.portone import PortOneGateway
from gateways.portone_objects import decline_code_for
from gateways.tls import client_ssl_context

SECRET = "test_portone_gateway_tests"
STORE = "store-00000000-0000-0000-0000-000000000001"
GOOD_CARD = "4300000000000001"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, verify=client_ssl_context()) as client:
        client.post("/sandbox/reset").raise_for_status()
        client.post("/sandbox/portone/reset").raise_for_status()
        yield client


@pytest.fixture
async def gateway(sandbox_url: str, control: httpx.Client) -> AsyncIterator[PortOneGateway]:
    gateway = PortOneGateway(sandbox_url, SECRET, STORE, retry_base_seconds=0.01)
    yield gateway
    await gateway.aclose()


def issue_key(control: httpx.Client, card: str = GOOD_CARD, customer: str = "cust-1", store: str = STORE) -> str:
    """What PortOne's browser SDK does once the customer entered a card."""
    response = control.post("/sandbox/portone/billing-keys", json={"cardNumber": card, "customerId": customer, "storeId": store})
    response.raise_for_status()
    return response.json()["billingKey"]


def requests_made(control: httpx.Client) -> list[dict[str, Any]]:
    return control.get("/sandbox/portone/requests").json()["requests"]


def payments_at_portone(control: httpx.Client) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in control.get("/sandbox/portone/payments").json()["payments"]}


def set_faults(control: httpx.Client, **faults: object) -> None:
    control.post("/sandbox/faults", json=faults).raise_for_status()


def new_order() -> str:
    return f"order-{uuid.uuid4()}"


async def paid_order(gateway: PortOneGateway, control: httpx.Client, amount: int = 10000) -> str:
    order_id = new_order()
    result = await gateway.charge(issue_key(control), "cust-1", amount, order_id, "Plan")
    assert result.status is ChargeStatus.APPROVED
    return order_id


# -- one test per endpoint: the documented request --------------------------------------------


async def test_registration_reads_the_billing_key_with_get_billing_keys(gateway, control) -> None:
    key = issue_key(control)
    issued = await gateway.issue_billing_key(key, "cust-1")
    assert (issued.billing_key, issued.card_masked) == (key, "4300********0001")
    [request] = requests_made(control)
    assert (request["method"], request["path"], request["query"]) == ("GET", f"/billing-keys/{key}", {"storeId": STORE})
    assert request["headers"]["authorization"] == f"PortOne {SECRET}"
    assert request["body"] is None


async def test_charge_posts_the_documented_billing_key_payment(gateway, control) -> None:
    key, order_id = issue_key(control), new_order()
    result = await gateway.charge(key, "cust-1", 9900, order_id, "Basic 2026-03")
    assert (result.status, result.order_id, result.payment_key, result.amount) == (ChargeStatus.APPROVED, order_id, order_id, 9900)
    assert result.approved_at is not None and result.gateway_status == "DONE"
    [request] = requests_made(control)
    assert (request["method"], request["path"]) == ("POST", f"/payments/{order_id}/billing-key")
    assert request["headers"]["authorization"] == f"PortOne {SECRET}"
    assert request["headers"]["content-type"] == "application/json"
    assert "idempotency-key" not in request["headers"]  # PortOne documents none: the paymentId is the key
    assert request["body"] == {
        "storeId": STORE, "billingKey": key, "orderName": "Basic 2026-03", "customer": {"id": "cust-1"},
        "amount": {"total": 9900}, "currency": "KRW",
    }
    at_portone = payments_at_portone(control)[order_id]
    assert (at_portone["status"], at_portone["amount"]["total"], at_portone["billingKey"]) == ("PAID", 9900, key)


async def test_cancel_posts_amount_reason_and_the_cancellable_balance(gateway, control) -> None:
    order_id = await paid_order(gateway, control)
    first = await gateway.refund(order_id, 3000, "partial", "refund-key-1")
    second = await gateway.refund(order_id, 7000, "the rest", "refund-key-2")
    assert (first.status, first.refunded_amount, second.status, second.refunded_amount) == (
        RefundStatus.DONE, 3000, RefundStatus.DONE, 7000)
    cancels = [r for r in requests_made(control) if r["path"].endswith("/cancel")]
    assert [(r["method"], r["path"]) for r in cancels] == [("POST", f"/payments/{order_id}/cancel")] * 2
    assert [r["body"] for r in cancels] == [
        {"storeId": STORE, "amount": 3000, "reason": "partial", "currentCancellableAmount": 10000},
        {"storeId": STORE, "amount": 7000, "reason": "the rest", "currentCancellableAmount": 7000},
    ]
    assert all(r["headers"]["authorization"] == f"PortOne {SECRET}" for r in cancels)
    at_portone = payments_at_portone(control)[order_id]
    assert at_portone["status"] == "CANCELLED" and at_portone["amount"]["cancelled"] == 10000
    assert [c["totalAmount"] for c in at_portone["cancellations"]] == [3000, 7000]


async def test_lookup_gets_the_payment_by_its_id(gateway, control) -> None:
    order_id = await paid_order(gateway, control, 5000)
    await gateway.refund(order_id, 1200, "partial", "k")
    found = await gateway.lookup_order(order_id)
    assert found is not None
    assert (found.status, found.amount, found.cancels, found.gateway_status) == (
        ChargeStatus.APPROVED, 5000, (1200,), "PARTIAL_CANCELED")
    lookups = [r for r in requests_made(control) if r["method"] == "GET" and r["path"] == f"/payments/{order_id}"]
    assert lookups and all(r["query"] == {"storeId": STORE} for r in lookups)
    assert await gateway.lookup_order(new_order()) is None
    assert (await gateway.lookup_payment(order_id)) == found


async def test_listing_pages_payments_by_cursor_with_a_request_body_query(gateway, control) -> None:
    gateway.listing_page = 2
    paid = [await paid_order(gateway, control, 1000 + i) for i in range(3)]
    declined = await gateway.charge(issue_key(control, "4300000000000002"), "cust-1", 500, new_order(), "Plan")
    assert declined.status is ChargeStatus.DECLINED
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    until = datetime.now(timezone.utc) + timedelta(minutes=5)
    listed = await gateway.list_transactions(since, until)
    assert [(t.order_id, t.amount, t.status) for t in listed] == [(o, 1000 + i, "DONE") for i, o in enumerate(paid)]
    pages = [r for r in requests_made(control) if r["path"] == "/payments-by-cursor"]
    assert [r["method"] for r in pages] == ["GET", "GET", "GET"]
    bodies = [json.loads(r["query"]["requestBody"]) for r in pages]
    assert bodies[0] == {"storeId": STORE, "from": since.isoformat().replace("+00:00", "Z"),
                         "until": until.isoformat().replace("+00:00", "Z"), "size": 2}
    assert "cursor" not in bodies[0] and bodies[1]["cursor"] and bodies[2]["cursor"] != bodies[1]["cursor"]


# -- error types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "status", "pg_code", "decline"),
    [
        ("PG_PROVIDER", 502, "REJECT_CARD_PAYMENT", DeclineCode.INSUFFICIENT_FUNDS),
        ("PG_PROVIDER", 502, "EXCEED_MAX_AMOUNT", DeclineCode.LIMIT_EXCEEDED),
        ("PG_PROVIDER", 502, "INVALID_STOPPED_CARD", DeclineCode.CARD_SUSPENDED),
        ("PG_PROVIDER", 502, "9999", DeclineCode.OTHER),  # another PG's own code
        ("BILLING_KEY_NOT_FOUND", 404, None, DeclineCode.INVALID_BILLING_KEY),
        ("BILLING_KEY_ALREADY_DELETED", 409, None, DeclineCode.INVALID_BILLING_KEY),
        ("MAX_TRANSACTION_COUNT_REACHED", 400, None, DeclineCode.LIMIT_EXCEEDED),
        ("UNAUTHORIZED", 401, None, DeclineCode.PROVIDER_ERROR),
        ("FORBIDDEN", 403, None, DeclineCode.PROVIDER_ERROR),
        ("CHANNEL_NOT_FOUND", 404, None, DeclineCode.PROVIDER_ERROR),
        ("INVALID_REQUEST", 400, None, DeclineCode.OTHER),
        ("PAYMENT_NOT_FOUND", 404, None, DeclineCode.OTHER),
        ("SUM_OF_PARTS_EXCEEDS_TOTAL_AMOUNT", 409, None, DeclineCode.OTHER),
        ("DISCOUNT_AMOUNT_EXCEEDS_TOTAL_AMOUNT", 409, None, DeclineCode.OTHER),
        ("PAYMENT_SCHEDULE_ALREADY_EXISTS", 409, None, DeclineCode.OTHER),
        ("PROMOTION_PAY_METHOD_DOES_NOT_MATCH", 409, None, DeclineCode.OTHER),
        (None, 500, None, DeclineCode.PROVIDER_ERROR),
        (None, 429, None, DeclineCode.PROVIDER_ERROR),
    ],
)
def test_portone_error_types_map_to_decline_codes(error_type, status, pg_code, decline) -> None:
    assert decline_code_for(error_type, status, pg_code) is decline


@pytest.mark.parametrize(
    ("card", "decline", "pg_code"),
    [
        ("4300000000000002", DeclineCode.INSUFFICIENT_FUNDS, "REJECT_CARD_PAYMENT"),
        ("4300000000000003", DeclineCode.LIMIT_EXCEEDED, "EXCEED_MAX_AMOUNT"),
        ("4300000000000004", DeclineCode.CARD_SUSPENDED, "INVALID_STOPPED_CARD"),
    ],
)
async def test_pg_provider_declines_over_the_wire(gateway, control, card, decline, pg_code) -> None:
    order_id = new_order()
    result = await gateway.charge(issue_key(control, card), "cust-1", 1000, order_id, "Plan")
    assert (result.status, result.decline_code, result.provider_code) == (
        ChargeStatus.DECLINED, decline, f"PG_PROVIDER:{pg_code}")
    at_portone = payments_at_portone(control)[order_id]
    assert (at_portone["status"], at_portone["failure"]["pgCode"]) == ("FAILED", pg_code)
    # HTTP 502, but the processor's verdict: not retried (a retry would put it to the card again).
    assert len([r for r in requests_made(control) if r["path"].endswith("/billing-key")]) == 1
    found = await gateway.lookup_order(order_id)
    assert found is not None and (found.status, found.decline_code) == (ChargeStatus.DECLINED, decline)


async def test_unknown_billing_key_is_billing_key_not_found(gateway, control) -> None:
    result = await gateway.charge("billing-key-nonexistent", "cust-1", 1000, new_order(), "Plan")
    assert (result.status, result.decline_code, result.provider_code) == (
        ChargeStatus.DECLINED, DeclineCode.INVALID_BILLING_KEY, "BILLING_KEY_NOT_FOUND")
    with pytest.raises(GatewayError) as refused:
        await gateway.issue_billing_key("billing-key-nonexistent", "cust-1")
    assert (refused.value.decline_code, refused.value.provider_code) == (DeclineCode.INVALID_BILLING_KEY, "BILLING_KEY_NOT_FOUND")


async def test_registration_refuses_another_customers_or_stores_key(gateway, control) -> None:
    with pytest.raises(GatewayError, match="another customer"):
        await gateway.issue_billing_key(issue_key(control, customer="cust-2"), "cust-1")
    with pytest.raises(GatewayError) as other_store:
        await gateway.issue_billing_key(issue_key(control, store="store-someone-else"), "cust-1")
    assert other_store.value.provider_code == "BILLING_KEY_NOT_FOUND"


async def test_wrong_secret_is_unauthorized(sandbox_url, control) -> None:
    gateway = PortOneGateway(sandbox_url, "not-a-portone-secret", STORE, retry_base_seconds=0.01)
    try:
        result = await gateway.charge(issue_key(control), "cust-1", 1000, new_order(), "Plan")
    finally:
        await gateway.aclose()
    assert (result.status, result.decline_code, result.provider_code) == (
        ChargeStatus.DECLINED, DeclineCode.PROVIDER_ERROR, "UNAUTHORIZED")
    assert payments_at_portone(control) == {}


async def test_invalid_request_and_cancel_errors(gateway, control) -> None:
    bad = await gateway.charge(issue_key(control), "cust-1", 0, new_order(), "Plan")
    assert (bad.status, bad.decline_code, bad.provider_code) == (ChargeStatus.DECLINED, DeclineCode.OTHER, "INVALID_REQUEST")
    order_id = await paid_order(gateway, control, 1000)
    too_much = await gateway.refund(order_id, 1001, "too much", "k1")
    assert (too_much.status, too_much.provider_code) == (RefundStatus.REFUSED, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT")
    assert (await gateway.refund(order_id, 1000, "all", "k2")).status is RefundStatus.DONE
    again = await gateway.refund(order_id, 1, "again", "k3")
    assert (again.status, again.provider_code) == (RefundStatus.REFUSED, "PAYMENT_ALREADY_CANCELLED")
    missing = await gateway.refund(new_order(), 1, "none", "k4")
    assert (missing.status, missing.provider_code) == (RefundStatus.REFUSED, "PAYMENT_NOT_FOUND")


# -- exactly once --------------------------------------------------------------------------------


async def test_a_dropped_charge_answer_is_already_paid_on_retry_and_settled_by_lookup(gateway, control) -> None:
    set_faults(control, dropResponses=1)
    order_id = new_order()
    result = await gateway.charge(issue_key(control), "cust-1", 7700, order_id, "Plan")
    assert (result.status, result.provider_code) == (ChargeStatus.UNKNOWN, "ALREADY_PAID")
    charges = [r for r in requests_made(control) if r["path"].endswith("/billing-key")]
    assert len(charges) == 2  # the lost try and its retry under the same paymentId
    found = await gateway.lookup_order(order_id)
    assert found is not None and (found.status, found.amount) == (ChargeStatus.APPROVED, 7700)
    assert [p["amount"]["paid"] for p in payments_at_portone(control).values()] == [7700]


async def test_a_charge_repeated_later_is_refused_already_paid(gateway, control) -> None:
    key, order_id = issue_key(control), new_order()
    assert (await gateway.charge(key, "cust-1", 1000, order_id, "Plan")).status is ChargeStatus.APPROVED
    again = await gateway.charge(key, "cust-1", 1000, order_id, "Plan")
    assert (again.status, again.provider_code) == (ChargeStatus.UNKNOWN, "ALREADY_PAID")
    assert len(payments_at_portone(control)) == 1


async def test_server_errors_are_retried_to_one_charge(gateway, control) -> None:
    set_faults(control, errorBurst={"status": 503, "count": 2})
    order_id = new_order()
    assert (await gateway.charge(issue_key(control), "cust-1", 1000, order_id, "Plan")).status is ChargeStatus.APPROVED
    assert len([r for r in requests_made(control) if r["path"].endswith("/billing-key")]) == 3
    assert list(payments_at_portone(control)) == [order_id]


async def test_a_dropped_cancel_answer_never_refunds_twice(gateway, control) -> None:
    order_id = await paid_order(gateway, control, 10000)
    set_faults(control, dropRefundResponses=1)
    result = await gateway.refund(order_id, 4000, "partial", "refund-1")
    assert (result.status, result.provider_code) == (RefundStatus.UNKNOWN, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN")
    cancels = [r for r in requests_made(control) if r["path"].endswith("/cancel")]
    assert [r["body"]["currentCancellableAmount"] for r in cancels] == [10000, 10000]
    found = await gateway.lookup_order(order_id)
    assert found is not None and found.cancels == (4000,)
    assert payments_at_portone(control)[order_id]["amount"]["cancelled"] == 4000


async def test_a_refused_refund_is_refused_and_may_be_sent_again(gateway, control) -> None:
    order_id = await paid_order(gateway, control, 3000)
    set_faults(control, refuseRefunds=1)
    refused = await gateway.refund(order_id, 3000, "all", "k")
    assert (refused.status, refused.provider_code) == (RefundStatus.REFUSED, "PG_PROVIDER:FAILED_REFUND_PROCESS")
    assert payments_at_portone(control)[order_id]["amount"]["cancelled"] == 0
    assert (await gateway.refund(order_id, 3000, "all", "k")).status is RefundStatus.DONE
    assert payments_at_portone(control)[order_id]["amount"]["cancelled"] == 3000


async def test_a_gateway_that_is_down_charges_nothing(gateway, control) -> None:
    set_faults(control, refuse=True)
    result = await gateway.charge(issue_key(control), "cust-1", 1000, new_order(), "Plan")
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, DeclineCode.PROVIDER_ERROR)
    assert len([r for r in requests_made(control) if r["path"].endswith("/billing-key")]) == 4  # 1 + 3 retries
    assert payments_at_portone(control) == {}


async def test_lookups_down_raise_network_error(gateway, control) -> None:
    order_id = await paid_order(gateway, control)
    set_faults(control, lookupsDown=True)
    with pytest.raises(GatewayError) as down:
        await gateway.lookup_order(order_id)
    assert down.value.decline_code is DeclineCode.NETWORK_ERROR


def test_serve_refuses_incomplete_portone_settings_in_one_line(tmp_path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "SUBLEDGER_GATEWAY": "sandbox,portone",
           "SUBLEDGER_PORTONE_API_SECRET": "a-secret-never-printed", "SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    refused = subprocess.run([sys.executable, "-m", "subledger.cli", "serve"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "subledger: SUBLEDGER_PORTONE_STORE_ID is required when SUBLEDGER_GATEWAY includes portone"]
    assert "a-secret-never-printed" not in refused.stdout + refused.stderr
