"""TossGateway against the sandbox gateway served over real HTTP by uvicorn."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from domain.errors import SandboxOnly
from domain.ports import ChargeStatus, DeclineCode, GatewayError, RefundStatus
from gateways.sandbox_engine import Faults, SandboxEngine
from gateways.tls import client_ssl_context
from gateways.toss import TossGateway, decline_code_for, in_process_sandbox
from gateways.toss_objects import listing_range, receipt_url
from gateway_server import closed_port_url, serve_sandbox

GOOD_CARD = "4300000000000001"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    """The sandbox's own controls (faults, outcomes, the charge list), over HTTP."""
    with httpx.Client(base_url=sandbox_url, verify=client_ssl_context()) as client:
        client.post("/sandbox/reset").raise_for_status()
        yield client


@pytest.fixture
async def gateway(sandbox_url: str, control: httpx.Client) -> AsyncIterator[TossGateway]:
    gateway = TossGateway(sandbox_url, "test_sk_gateway_tests", retry_base_seconds=0.01, sandbox=True)
    yield gateway
    await gateway.aclose()


def set_faults(control: httpx.Client, **faults: object) -> None:
    control.post("/sandbox/faults", json=faults).raise_for_status()


def charges_for(control: httpx.Client, order_id: str) -> list[dict]:
    return [c for c in control.get("/sandbox/charges").json()["charges"] if c["orderId"] == order_id]


async def billing_key(gateway: TossGateway, card: str = GOOD_CARD, customer: str = "cust-1") -> str:
    return (await gateway.issue_billing_key(f"test_card_{card}", customer)).billing_key


def new_order() -> str:
    return f"order-{uuid.uuid4()}"


def refunds_for(control: httpx.Client, order_id: str) -> list[dict]:
    return [r for r in control.get("/sandbox/refunds").json()["refunds"] if r["orderId"] == order_id]


async def charged_order(gateway: TossGateway, amount: int = 10000) -> tuple[str, str]:
    order_id = new_order()
    charged = await gateway.charge(await billing_key(gateway), "cust-1", amount, order_id, "Plan")
    assert charged.status is ChargeStatus.APPROVED and charged.payment_key
    return order_id, charged.payment_key


@pytest.mark.parametrize(
    ("provider_code", "http_status", "decline"),
    [
        ("REJECT_CARD_PAYMENT", 403, DeclineCode.INSUFFICIENT_FUNDS),
        ("EXCEED_MAX_AMOUNT", 400, DeclineCode.LIMIT_EXCEEDED),
        ("EXCEED_MAX_ONE_DAY_AMOUNT", 400, DeclineCode.LIMIT_EXCEEDED),
        ("EXCEED_MAX_DAILY_PAYMENT_COUNT", 400, DeclineCode.LIMIT_EXCEEDED),
        ("INVALID_STOPPED_CARD", 403, DeclineCode.CARD_SUSPENDED),
        ("INVALID_REJECT_CARD", 403, DeclineCode.CARD_SUSPENDED),
        ("NOT_FOUND_BILLING_KEY", 404, DeclineCode.INVALID_BILLING_KEY),
        ("INVALID_BILLING_KEY", 400, DeclineCode.INVALID_BILLING_KEY),
        ("PROVIDER_ERROR", 400, DeclineCode.PROVIDER_ERROR),
        ("FAILED_INTERNAL_SYSTEM_PROCESSING", 500, DeclineCode.PROVIDER_ERROR),
        (None, 502, DeclineCode.PROVIDER_ERROR),
        ("INVALID_CARD_EXPIRATION", 400, DeclineCode.OTHER),
        (None, 400, DeclineCode.OTHER),
    ],
)
def test_toss_codes_map_to_decline_codes(provider_code: str | None, http_status: int, decline: DeclineCode) -> None:
    assert decline_code_for(provider_code, http_status) is decline


async def test_issue_billing_key_returns_masked_card(gateway: TossGateway) -> None:
    issued = await gateway.issue_billing_key(f"test_card_{GOOD_CARD}", "cust-1")
    assert issued.billing_key.startswith("bk_sbx_")
    assert issued.card_masked == "4300********0001"


async def test_issue_with_a_bad_auth_key_raises(gateway: TossGateway) -> None:
    with pytest.raises(GatewayError) as raised:
        await gateway.issue_billing_key("not-a-test-card", "cust-1")
    assert raised.value.provider_code == "INVALID_AUTH_KEY"
    assert raised.value.decline_code is DeclineCode.OTHER


async def test_charge_success(gateway: TossGateway, control: httpx.Client) -> None:
    order_id = new_order()
    result = await gateway.charge(await billing_key(gateway), "cust-1", 9900, order_id, "Premium monthly")
    assert result.status is ChargeStatus.APPROVED
    assert result.amount == 9900 and result.order_id == order_id and result.payment_key
    assert result.approved_at is not None and result.approved_at.tzinfo is not None
    assert charges_for(control, order_id) == [
        {"orderId": order_id, "amount": 9900, "paymentKey": result.payment_key, "receiptUrl": result.receipt_url}
    ]


async def test_a_charge_carries_the_receipt_url_the_gateway_serves(
    gateway: TossGateway, control: httpx.Client, sandbox_url: str
) -> None:
    key = await billing_key(gateway)
    order_id = new_order()
    result = await gateway.charge(key, "cust-1", 9900, order_id, "Premium monthly")
    assert result.receipt_url == f"{sandbox_url}/receipt/redirection?transactionId={result.payment_key}"
    assert key not in result.receipt_url and "test_sk_" not in result.receipt_url
    page = httpx.get(result.receipt_url, verify=client_ssl_context())  # over real HTTP, without the secret key
    assert page.status_code == 200 and order_id in page.text and "9,900원" in page.text
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None and looked_up.receipt_url == result.receipt_url


def test_a_receipt_url_holding_a_credential_or_malformed_is_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    def url_in(url: object) -> str | None:
        return receipt_url({"orderId": "o-1", "receipt": {"url": url}}, ("test_sk_secret", "bk_1+/="))

    assert url_in("https://dashboard.tosspayments.com/receipt/redirection?transactionId=pk_1&ref=PX") is not None
    assert url_in("https://r.example/?k=test_sk_secret") is None
    assert url_in("https://r.example/?k=bk_1%2B%2F%3D") is None  # percent-encoded billing key
    assert url_in("javascript:alert(1)") is None and url_in("/relative") is None and url_in(42) is None
    assert url_in("https://r.example/" + "a" * 3000) is None
    assert receipt_url({"receipt": None}) is None and receipt_url({}) is None
    assert "test_sk_secret" not in caplog.text and "bk_1" not in caplog.text
    assert "receipt_url_refused order_id=o-1 reason=holds_a_credential" in caplog.text


@pytest.mark.parametrize(
    ("card", "decline", "provider_code"),
    [
        ("4300000000000002", DeclineCode.INSUFFICIENT_FUNDS, "REJECT_CARD_PAYMENT"),
        ("4300000000000003", DeclineCode.LIMIT_EXCEEDED, "EXCEED_MAX_AMOUNT"),
        ("4300000000000004", DeclineCode.CARD_SUSPENDED, "INVALID_STOPPED_CARD"),
    ],
)
async def test_test_card_declines_map_to_decline_codes(
    gateway: TossGateway, control: httpx.Client, card: str, decline: DeclineCode, provider_code: str
) -> None:
    order_id = new_order()
    result = await gateway.charge(await billing_key(gateway, card), "cust-1", 1000, order_id, "Plan")
    assert (result.status, result.decline_code, result.provider_code) == (ChargeStatus.DECLINED, decline, provider_code)
    assert result.message
    assert charges_for(control, order_id) == []
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None
    assert (looked_up.status, looked_up.decline_code, looked_up.provider_code) == (
        ChargeStatus.DECLINED,
        decline,
        provider_code,
    )


@pytest.mark.parametrize(
    ("outcome", "decline"),
    [
        ("INSUFFICIENT_FUNDS", DeclineCode.INSUFFICIENT_FUNDS),
        ("LIMIT_EXCEEDED", DeclineCode.LIMIT_EXCEEDED),
        ("CARD_SUSPENDED", DeclineCode.CARD_SUSPENDED),
        ("INVALID_BILLING_KEY", DeclineCode.INVALID_BILLING_KEY),
    ],
)
async def test_sandbox_outcome_declines_later_charges(
    gateway: TossGateway, outcome: str, decline: DeclineCode
) -> None:
    key = await billing_key(gateway)
    await gateway.set_sandbox_outcome(key, outcome)
    result = await gateway.charge(key, "cust-1", 1000, new_order(), "Plan")
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, decline)


async def test_succeed_outcome_overrides_a_declining_test_card(gateway: TossGateway) -> None:
    key = await billing_key(gateway, "4300000000000002")
    await gateway.set_sandbox_outcome(key, "SUCCEED")
    assert (await gateway.charge(key, "cust-1", 1000, new_order(), "Plan")).status is ChargeStatus.APPROVED


async def test_unknown_billing_key_is_invalid_billing_key(gateway: TossGateway) -> None:
    result = await gateway.charge("bk_not_issued_here", "cust-1", 1000, new_order(), "Plan")
    assert (result.decline_code, result.provider_code) == (DeclineCode.INVALID_BILLING_KEY, "NOT_FOUND_BILLING_KEY")


@pytest.mark.parametrize("outcome", ["SERVER_ERROR_ONCE", "RATE_LIMITED_ONCE"])
async def test_transient_failure_is_retried_under_the_same_key_and_charges_once(
    gateway: TossGateway, control: httpx.Client, outcome: str
) -> None:
    key = await billing_key(gateway)
    await gateway.set_sandbox_outcome(key, outcome)
    order_id = new_order()
    result = await gateway.charge(key, "cust-1", 1000, order_id, "Plan")
    assert result.status is ChargeStatus.APPROVED
    assert len(charges_for(control, order_id)) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_errors_for_every_retry_decline_as_provider_error(
    gateway: TossGateway, control: httpx.Client, status: int
) -> None:
    key = await billing_key(gateway)
    order_id = new_order()
    set_faults(control, errorBurst={"status": status, "count": 4})  # the first try and 3 retries
    result = await gateway.charge(key, "cust-1", 1000, order_id, "Plan")
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, DeclineCode.PROVIDER_ERROR)
    assert charges_for(control, order_id) == []
    assert await gateway.lookup_order(order_id) is None


async def test_three_retries_outlast_a_burst_of_three_errors(gateway: TossGateway, control: httpx.Client) -> None:
    key = await billing_key(gateway)
    set_faults(control, errorBurst={"status": 502, "count": 3})
    order_id = new_order()
    assert (await gateway.charge(key, "cust-1", 1000, order_id, "Plan")).status is ChargeStatus.APPROVED
    assert len(charges_for(control, order_id)) == 1


async def test_dropped_responses_give_unknown_then_lookup_finds_the_one_charge(
    gateway: TossGateway, control: httpx.Client
) -> None:
    key = await billing_key(gateway)
    order_id = new_order()
    set_faults(control, dropResponses=4)  # the first try and every retry lose their answer
    result = await gateway.charge(key, "cust-1", 1000, order_id, "Plan")
    assert (result.status, result.decline_code) == (ChargeStatus.UNKNOWN, DeclineCode.NETWORK_ERROR)
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None and looked_up.status is ChargeStatus.APPROVED
    assert looked_up.amount == 1000 and looked_up.approved_at is not None and looked_up.approved_at.tzinfo
    [charge] = charges_for(control, order_id)
    assert looked_up.payment_key == charge["paymentKey"]
    assert looked_up.receipt_url == charge["receiptUrl"] is not None
    # Asking again for the same order replays the first answer: still one charge.
    assert (await gateway.charge(key, "cust-1", 1000, order_id, "Plan")).payment_key == charge["paymentKey"]
    assert len(charges_for(control, order_id)) == 1


async def test_a_dropped_response_is_recovered_by_the_retry_replay(gateway: TossGateway, control: httpx.Client) -> None:
    key = await billing_key(gateway)
    order_id = new_order()
    set_faults(control, dropResponses=1)
    result = await gateway.charge(key, "cust-1", 1000, order_id, "Plan")
    assert result.status is ChargeStatus.APPROVED
    assert [c["paymentKey"] for c in charges_for(control, order_id)] == [result.payment_key]


async def test_gateway_refusing_connections_is_network_error() -> None:
    gateway = TossGateway(closed_port_url(), "test_sk_gateway_tests", retry_base_seconds=0.01)
    try:
        result = await gateway.charge("bk_sbx_any", "cust-1", 1000, new_order(), "Plan")
        assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, DeclineCode.NETWORK_ERROR)
        with pytest.raises(GatewayError) as raised:
            await gateway.lookup_order("order-1")
        assert raised.value.decline_code is DeclineCode.NETWORK_ERROR
    finally:
        await gateway.aclose()


async def test_refund_partial_then_the_rest(gateway: TossGateway) -> None:
    order_id = new_order()
    charged = await gateway.charge(await billing_key(gateway), "cust-1", 10000, order_id, "Plan")
    assert charged.payment_key
    partial = await gateway.refund(charged.payment_key, 3000, "downgrade", f"{order_id}-refund-1")
    assert (partial.status, partial.ok, partial.refunded_amount) == (RefundStatus.DONE, True, 3000)
    # The same idempotency key again replays the first refund instead of refunding twice.
    again = await gateway.refund(charged.payment_key, 3000, "downgrade", f"{order_id}-refund-1")
    assert (again.status, again.refunded_amount) == (RefundStatus.DONE, 3000)
    partly = await gateway.lookup_order(order_id)
    assert partly is not None
    assert (partly.status, partly.gateway_status) == (ChargeStatus.APPROVED, "PARTIAL_CANCELED")
    assert partly.cancels == (3000,) and partly.charged
    too_much = await gateway.refund(charged.payment_key, 7001, "cancel", f"{order_id}-refund-2")
    assert (too_much.status, too_much.ok, too_much.provider_code) == (
        RefundStatus.REFUSED,
        False,
        "NOT_CANCELABLE_AMOUNT",
    )
    rest = await gateway.refund(charged.payment_key, 7000, "cancel", f"{order_id}-refund-3")
    assert (rest.status, rest.refunded_amount) == (RefundStatus.DONE, 7000)
    # Wholly given back: a settled non-charge for the order, though the money was once taken.
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None
    assert (looked_up.status, looked_up.decline_code, looked_up.gateway_status) == (
        ChargeStatus.DECLINED,
        DeclineCode.OTHER,
        "CANCELED",
    )
    assert looked_up.cancels == (3000, 7000) and looked_up.charged and looked_up.amount == 10000
    assert looked_up.payment_key == charged.payment_key and looked_up.message == "canceled at the provider"


async def test_refund_in_full(gateway: TossGateway) -> None:
    order_id = new_order()
    charged = await gateway.charge(await billing_key(gateway), "cust-1", 5000, order_id, "Plan")
    assert charged.payment_key
    refunded = await gateway.refund(charged.payment_key, 5000, "cancel now", f"{order_id}-refund-1")
    assert (refunded.status, refunded.refunded_amount) == (RefundStatus.DONE, 5000)
    after = await gateway.refund(charged.payment_key, 1, "again", f"{order_id}-refund-2")
    assert (after.status, after.provider_code) == (RefundStatus.REFUSED, "ALREADY_CANCELED_PAYMENT")


async def test_lookup_of_an_unknown_order_is_none(gateway: TossGateway) -> None:
    assert await gateway.lookup_order(new_order()) is None


async def test_a_wrong_secret_key_is_refused(sandbox_url: str) -> None:
    gateway = TossGateway(sandbox_url, "live_sk_not_for_the_sandbox", retry_base_seconds=0.01)
    try:
        result = await gateway.charge("bk_sbx_any", "cust-1", 1000, new_order(), "Plan")
        assert (result.status, result.decline_code, result.provider_code) == (
            ChargeStatus.DECLINED,
            DeclineCode.OTHER,
            "UNAUTHORIZED_KEY",
        )
    finally:
        await gateway.aclose()


async def test_set_sandbox_outcome_outside_the_sandbox_is_refused(sandbox_url: str) -> None:
    gateway = TossGateway(sandbox_url, "test_sk_gateway_tests")
    try:
        with pytest.raises(SandboxOnly):
            await gateway.set_sandbox_outcome("bk_sbx_any", "SUCCEED")
    finally:
        await gateway.aclose()


# -- orders still moving at the provider, refunds' three outcomes, the transaction listing --


async def test_an_order_in_progress_is_unknown_until_completed(gateway: TossGateway, control: httpx.Client) -> None:
    key = await billing_key(gateway)
    await gateway.set_sandbox_outcome(key, "HOLD_IN_PROGRESS")
    order_id = new_order()
    charged = await gateway.charge(key, "cust-1", 4000, order_id, "Plan")
    assert (charged.status, charged.gateway_status, charged.charged) == (ChargeStatus.UNKNOWN, "IN_PROGRESS", False)
    assert charged.payment_key and charged.approved_at is None and charged.decline_code is None
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None
    assert (looked_up.status, looked_up.gateway_status) == (ChargeStatus.UNKNOWN, "IN_PROGRESS")
    assert charges_for(control, order_id) == []
    control.post(f"/sandbox/orders/{order_id}/complete", json={"status": "DONE"}).raise_for_status()
    done = await gateway.lookup_order(order_id)
    assert done is not None
    assert (done.status, done.gateway_status, done.amount, done.cancels) == (ChargeStatus.APPROVED, "DONE", 4000, ())
    assert done.charged and done.approved_at is not None and done.payment_key == charged.payment_key
    assert [c["paymentKey"] for c in charges_for(control, order_id)] == [charged.payment_key]


async def test_lookup_payment_by_key_answers_the_order_with_its_dashboard_cancels(
    gateway: TossGateway, control: httpx.Client
) -> None:
    order_id, payment_key = await charged_order(gateway, 7000)
    control.post(f"/sandbox/dashboard/payments/{payment_key}/cancel", json={"cancelAmount": 2500}).raise_for_status()
    found = await gateway.lookup_payment(payment_key)
    assert found is not None
    assert (found.order_id, found.status, found.gateway_status, found.amount, found.cancels) == (
        order_id, ChargeStatus.APPROVED, "PARTIAL_CANCELED", 7000, (2500,))
    assert [(r["amount"], r["idempotencyKey"]) for r in refunds_for(control, order_id)] == [(2500, None)]
    assert await gateway.lookup_payment("sbx_pay_never_issued") is None
    set_faults(control, lookupsDown=True)
    with pytest.raises(GatewayError) as raised:
        await gateway.lookup_payment(payment_key)
    assert raised.value.decline_code is DeclineCode.NETWORK_ERROR


async def test_an_order_in_progress_can_end_aborted(gateway: TossGateway, control: httpx.Client) -> None:
    key = await billing_key(gateway)
    await gateway.set_sandbox_outcome(key, "HOLD_IN_PROGRESS")
    order_id = new_order()
    assert (await gateway.charge(key, "cust-1", 1000, order_id, "Plan")).status is ChargeStatus.UNKNOWN
    control.post(f"/sandbox/orders/{order_id}/complete", json={"status": "ABORTED"}).raise_for_status()
    aborted = await gateway.lookup_order(order_id)
    assert aborted is not None
    assert (aborted.status, aborted.decline_code, aborted.provider_code, aborted.gateway_status) == (
        ChargeStatus.DECLINED,
        DeclineCode.INSUFFICIENT_FUNDS,
        "REJECT_CARD_PAYMENT",
        "ABORTED",
    )
    assert not aborted.charged and charges_for(control, order_id) == []


async def test_refused_refund_processes_nothing_and_the_same_key_works_later(
    gateway: TossGateway, control: httpx.Client
) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, refuseRefunds=1)
    refused = await gateway.refund(payment_key, 2500, "downgrade", f"{order_id}-refund-1")
    assert (refused.status, refused.ok, refused.provider_code) == (RefundStatus.REFUSED, False, "FAILED_REFUND_PROCESS")
    assert refused.refunded_amount == 0 and refused.message
    assert refunds_for(control, order_id) == []
    # The refusal was not kept as the key's answer: the same key now refunds.
    retried = await gateway.refund(payment_key, 2500, "downgrade", f"{order_id}-refund-1")
    assert (retried.status, retried.refunded_amount) == (RefundStatus.DONE, 2500)
    assert [r["amount"] for r in refunds_for(control, order_id)] == [2500]


async def test_refund_with_every_answer_lost_is_unknown_and_the_repeat_is_a_replay(
    gateway: TossGateway, control: httpx.Client
) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, dropRefundResponses=4)  # the first try and every retry lose their answer
    lost = await gateway.refund(payment_key, 3000, "downgrade", f"{order_id}-refund-1")
    assert (lost.status, lost.ok) == (RefundStatus.UNKNOWN, False)
    [refund] = refunds_for(control, order_id)
    assert (refund["amount"], refund["idempotencyKey"]) == (3000, f"{order_id}-refund-1")
    assert refund["paymentKey"] == payment_key
    again = await gateway.refund(payment_key, 3000, "downgrade", f"{order_id}-refund-1")
    assert (again.status, again.refunded_amount) == (RefundStatus.DONE, 3000)
    assert refunds_for(control, order_id) == [refund]
    looked_up = await gateway.lookup_order(order_id)
    assert looked_up is not None and looked_up.cancels == (3000,)


async def test_a_lost_refund_answer_is_recovered_by_the_retry_replay(
    gateway: TossGateway, control: httpx.Client
) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, dropRefundResponses=1)
    refunded = await gateway.refund(payment_key, 10000, "cancel", f"{order_id}-refund-1")
    assert (refunded.status, refunded.refunded_amount) == (RefundStatus.DONE, 10000)
    assert len(refunds_for(control, order_id)) == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_refund_answered_5xx_on_every_try_processed_nothing(
    gateway: TossGateway, control: httpx.Client, status: int
) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, errorBurst={"status": status, "count": 4})
    result = await gateway.refund(payment_key, 1000, "r", f"{order_id}-refund-1")
    assert result.status is RefundStatus.REFUSED and refunds_for(control, order_id) == []


async def test_refund_errors_then_a_lost_answer_is_unknown(gateway: TossGateway, control: httpx.Client) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, errorBurst={"status": 503, "count": 3}, dropRefundResponses=1)  # the last try is lost
    result = await gateway.refund(payment_key, 1000, "r", f"{order_id}-refund-1")
    assert result.status is RefundStatus.UNKNOWN
    assert len(refunds_for(control, order_id)) == 1


async def test_slow_refunds_still_succeed(gateway: TossGateway, control: httpx.Client) -> None:
    order_id, payment_key = await charged_order(gateway)
    set_faults(control, refundLatencyMs=300)
    started = time.monotonic()
    refunded = await gateway.refund(payment_key, 1000, "r", f"{order_id}-refund-1")
    assert time.monotonic() - started >= 0.3
    assert (refunded.status, refunded.refunded_amount) == (RefundStatus.DONE, 1000)
    # Only cancels are slow.
    started = time.monotonic()
    await charged_order(gateway)
    assert time.monotonic() - started < 0.3


def test_listing_range_is_korean_local_time_with_an_inclusive_end() -> None:
    since = datetime(2024, 1, 31, 15, 0, tzinfo=timezone.utc)
    assert listing_range(since, since + timedelta(days=1)) == ("2024-02-01T00:00:00.000", "2024-02-01T23:59:59.999")


async def test_list_transactions_pages_through_every_approval(gateway: TossGateway, control: httpx.Client) -> None:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    approved = [await charged_order(gateway, amount) for amount in (1000, 2000, 3000, 4000, 5000)]
    await gateway.charge(await billing_key(gateway, "4300000000000002"), "cust-1", 700, new_order(), "Plan")  # declined
    held = await billing_key(gateway)
    await gateway.set_sandbox_outcome(held, "HOLD_IN_PROGRESS")
    await gateway.charge(held, "cust-1", 800, new_order(), "Plan")  # still in progress
    gateway.transactions_page = 2  # three pages: 2 + 2 + 1
    listed = await gateway.list_transactions(since, datetime.now(timezone.utc) + timedelta(minutes=1))
    assert [(t.order_id, t.payment_key) for t in listed] == approved
    assert [t.amount for t in listed] == [1000, 2000, 3000, 4000, 5000]
    assert {t.status for t in listed} == {"DONE"} and all(since <= t.at for t in listed)
    assert await gateway.list_transactions(since - timedelta(hours=1), since) == []


async def test_list_transactions_when_the_provider_cannot_be_reached() -> None:
    gateway = TossGateway(closed_port_url(), "test_sk_gateway_tests", retry_base_seconds=0.01)
    try:
        with pytest.raises(GatewayError) as raised:
            await gateway.list_transactions(datetime.now(timezone.utc) - timedelta(hours=1), datetime.now(timezone.utc))
        assert raised.value.decline_code is DeclineCode.NETWORK_ERROR
    finally:
        await gateway.aclose()


# -- the in-process sandbox (httpx.ASGITransport) shows faults like the network does --


async def test_in_process_sandbox_drop_is_unknown_and_refuse_is_network_error() -> None:
    engine = SandboxEngine()
    gateway = in_process_sandbox(engine, retry_base_seconds=0.01)
    try:
        assert gateway.provider == "SANDBOX"
        key = await billing_key(gateway)
        engine.set_faults(Faults(drop_responses=4))
        dropped = await gateway.charge(key, "cust-1", 1000, "order-drop", "Plan")
        assert dropped.status is ChargeStatus.UNKNOWN
        assert [c["orderId"] for c in engine.charges()] == ["order-drop"]
        engine.set_faults(Faults(refuse=True))
        refused = await gateway.charge(key, "cust-1", 1000, "order-refused", "Plan")
        assert (refused.status, refused.decline_code) == (ChargeStatus.DECLINED, DeclineCode.NETWORK_ERROR)
    finally:
        await gateway.aclose()


async def test_same_order_charged_concurrently_charges_once_and_the_other_is_unknown() -> None:
    """A second caller with the same order id while the first is in flight gets Toss'
    409 on every try: it must not read that as a decline, the card is being charged."""
    engine = SandboxEngine()
    gateway = in_process_sandbox(engine, retry_base_seconds=0.01)
    try:
        key = await billing_key(gateway)
        engine.set_faults(Faults(latency_ms=500))  # far longer than the retries (≈ 0.07 s)
        first, second = await asyncio.gather(
            gateway.charge(key, "cust-1", 1000, "order-raced", "Plan"),
            gateway.charge(key, "cust-1", 1000, "order-raced", "Plan"),
        )
        assert first.status is ChargeStatus.APPROVED
        assert (second.status, second.provider_code) == (ChargeStatus.UNKNOWN, "IDEMPOTENT_REQUEST_PROCESSING")
        assert len(engine.charges()) == 1
    finally:
        await gateway.aclose()


async def test_same_refund_sent_concurrently_refunds_once_and_the_other_is_unknown() -> None:
    engine = SandboxEngine()
    gateway = in_process_sandbox(engine, retry_base_seconds=0.01)
    try:
        _, payment_key = await charged_order(gateway)
        engine.set_faults(Faults(refund_latency_ms=500))  # far longer than the retries (≈ 0.07 s)
        first, second = await asyncio.gather(
            gateway.refund(payment_key, 1000, "r", "refund-raced"),
            gateway.refund(payment_key, 1000, "r", "refund-raced"),
        )
        assert (first.status, first.refunded_amount) == (RefundStatus.DONE, 1000)
        assert (second.status, second.provider_code) == (RefundStatus.UNKNOWN, "IDEMPOTENT_REQUEST_PROCESSING")
        assert len(engine.refunds()) == 1
    finally:
        await gateway.aclose()
