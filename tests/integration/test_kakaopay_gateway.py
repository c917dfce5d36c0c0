"""KakaoPayGateway against KakaoPay's look-alike in the sandbox gateway server, over real HTTP:
each endpoint's request as KakaoPay documents it, each error code's mapping, the faults."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from domain.ports import ChargeStatus, DeclineCode, GatewayError, RefundStatus
from gateways.kakaopay import KakaoPayGateway
from gateways.kakaopay_objects import decline_code_for
from gateway_server import serve_sandbox, sandbox_control

SECRET = "DEVTESTSECRETKEY"
CID = "TCSUBSCRIP"
PAGES = ("https://shop.example/kakao/ok", "https://shop.example/kakao/cancel", "https://shop.example/kakao/fail")


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    with sandbox_control(sandbox_url) as client:
        yield client


@pytest.fixture
async def gateway(sandbox_url: str, control: httpx.Client) -> AsyncIterator[KakaoPayGateway]:
    gateway = KakaoPayGateway(sandbox_url, SECRET, CID, retry_base_seconds=0.01)
    yield gateway
    await gateway.aclose()


def last_request(control: httpx.Client) -> dict:
    return control.get("/sandbox/kakaopay/requests").json()["requests"][-1]


def approve_as_payer(control: httpx.Client, redirect_url: str) -> str:
    """The payer approves on KakaoPay's page: it sends them to approval_url with a pg_token."""
    answer = control.get(urlsplit(redirect_url).path)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == PAGES[0]
    return parse_qs(location.query)["pg_token"][0]


async def register(gateway: KakaoPayGateway, control: httpx.Client, customer: str = "cust-1") -> str:
    redirect = await gateway.begin_registration(customer, *PAGES)
    token = approve_as_payer(control, redirect.pc_url or "")
    return (await gateway.complete_registration(redirect.registration_id, token, customer)).billing_key


def assert_documented(request: dict, path: str, body: dict) -> None:
    assert (request["method"], request["path"]) == ("POST", path)
    assert request["authorization"] == f"SECRET_KEY {SECRET}"
    assert request["contentType"] == "application/json"
    assert request["body"] == body


async def test_ready_sends_the_documented_request(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    request = last_request(control)
    order_id = request["body"]["partner_order_id"]
    assert_documented(request, "/online/v1/payment/ready", {
        "cid": CID, "partner_order_id": order_id, "partner_user_id": "cust-1", "item_name": "정기결제 등록",
        "quantity": 1, "total_amount": 0, "tax_free_amount": 0,
        "approval_url": PAGES[0], "cancel_url": PAGES[1], "fail_url": PAGES[2],
    })
    assert redirect.registration_id.startswith(f"{order_id}.T")
    assert redirect.pc_url and redirect.mobile_url and redirect.app_url


async def test_approve_sends_the_documented_request_and_yields_the_sid(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    token = approve_as_payer(control, redirect.pc_url or "")
    issued = await gateway.complete_registration(redirect.registration_id, token, "cust-1")
    order_id, _, tid = redirect.registration_id.partition(".")
    assert_documented(last_request(control), "/online/v1/payment/approve", {
        "cid": CID, "tid": tid, "partner_order_id": order_id, "partner_user_id": "cust-1", "pg_token": token,
    })
    assert issued.billing_key.startswith("S") and len(issued.billing_key) == 20
    assert control.get("/sandbox/kakaopay/charges").json()["charges"] == []  # a 0-won first payment


async def test_subscription_charge_sends_the_documented_request(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    result = await gateway.charge(sid, "cust-1", 9900, "order-1", "Basic plan")
    assert_documented(last_request(control), "/online/v1/payment/subscription", {
        "cid": CID, "sid": sid, "partner_order_id": "order-1", "partner_user_id": "cust-1",
        "item_name": "Basic plan", "quantity": 1, "total_amount": 9900, "tax_free_amount": 0,
    })
    assert (result.status, result.amount, result.gateway_status) == (ChargeStatus.APPROVED, 9900, "DONE")
    charges = control.get("/sandbox/kakaopay/charges").json()["charges"]
    assert [(c["orderId"], c["tid"], c["amount"]) for c in charges] == [("order-1", result.payment_key, 9900)]


async def test_cancel_sends_the_documented_request_whole_and_part(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    tid = (await gateway.charge(sid, "cust-1", 10000, "order-2", "Plan")).payment_key
    part = await gateway.refund(tid or "", 3000, "partial", "refund-key-1")
    assert_documented(last_request(control), "/online/v1/payment/cancel", {
        "cid": CID, "tid": tid, "cancel_amount": 3000, "cancel_tax_free_amount": 0, "payload": "refund-key-1",
    })
    rest = await gateway.refund(tid or "", 7000, "rest", "refund-key-2")
    assert (part.status, part.refunded_amount, rest.status, rest.refunded_amount) == (RefundStatus.DONE, 3000, RefundStatus.DONE, 7000)
    over = await gateway.refund(tid or "", 1, "nothing left", "refund-key-3")
    assert (over.status, over.provider_code) == (RefundStatus.REFUSED, "-784")
    refunds = control.get("/sandbox/kakaopay/refunds").json()["refunds"]
    assert [(r["amount"], r["payload"]) for r in refunds] == [(3000, "refund-key-1"), (7000, "refund-key-2")]


async def test_order_lookup_sends_the_documented_request(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    tid = (await gateway.charge(sid, "cust-1", 5000, "order-3", "Points")).payment_key or ""
    await gateway.refund(tid, 2000, "part", "k")
    found = await gateway.lookup_order("order-3", payment_key=tid)
    assert_documented(last_request(control), "/online/v1/payment/order", {"cid": CID, "tid": tid})
    assert found is not None
    assert (found.status, found.gateway_status, found.amount, found.cancels) == (ChargeStatus.APPROVED, "PARTIAL_CANCELED", 5000, (2000,))
    assert found.charged
    assert await gateway.lookup_order("order-x", payment_key="T0000000000000000000") is None  # -721
    with pytest.raises(GatewayError):
        await gateway.lookup_order("order-3")  # no tid: KakaoPay cannot be asked


@pytest.mark.parametrize(("code", "decline"), [
    (-782, DeclineCode.INSUFFICIENT_FUNDS), (-780, DeclineCode.INSUFFICIENT_FUNDS),
    (-797, DeclineCode.LIMIT_EXCEEDED), (-752, DeclineCode.LIMIT_EXCEEDED),
    (-750, DeclineCode.INVALID_BILLING_KEY), (-753, DeclineCode.INVALID_BILLING_KEY),
    (-751, DeclineCode.CARD_SUSPENDED), (-731, DeclineCode.OTHER), (-799, DeclineCode.OTHER), (None, DeclineCode.OTHER),
])
def test_error_code_mapping(code: int | None, decline: DeclineCode) -> None:
    assert decline_code_for(code) is decline
    assert decline_code_for(code, 500) is DeclineCode.PROVIDER_ERROR
    assert decline_code_for(code, 429) is DeclineCode.PROVIDER_ERROR


@pytest.mark.parametrize(("outcome", "code", "decline"), [
    ("INSUFFICIENT_FUNDS", "-782", DeclineCode.INSUFFICIENT_FUNDS),
    ("LIMIT_EXCEEDED", "-797", DeclineCode.LIMIT_EXCEEDED),
    ("CARD_SUSPENDED", "-751", DeclineCode.CARD_SUSPENDED),
    ("INVALID_BILLING_KEY", "-750", DeclineCode.INVALID_BILLING_KEY),
])
async def test_declines_over_http(gateway: KakaoPayGateway, control: httpx.Client, outcome: str, code: str, decline: DeclineCode) -> None:
    sid = await register(gateway, control)
    control.post(f"/sandbox/kakaopay/sids/{sid}/outcome", json={"outcome": outcome}).raise_for_status()
    result = await gateway.charge(sid, "cust-1", 9900, f"order-{uuid.uuid4()}", "Plan")
    assert (result.status, result.provider_code, result.decline_code) == (ChargeStatus.DECLINED, code, decline)
    assert control.get("/sandbox/kakaopay/charges").json()["charges"] == []


async def test_another_customer_or_an_unknown_sid_is_declined(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    other = await gateway.charge(sid, "cust-2", 100, "order-4", "Plan")
    unknown = await gateway.charge("S0000000000000000000", "cust-1", 100, "order-5", "Plan")
    assert (other.provider_code, other.decline_code) == ("-753", DeclineCode.INVALID_BILLING_KEY)
    assert (unknown.provider_code, unknown.decline_code) == ("-750", DeclineCode.INVALID_BILLING_KEY)


async def test_a_dropped_charge_answer_is_unknown_and_never_sent_again(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    control.post("/sandbox/faults", json={"dropResponses": 1}).raise_for_status()
    result = await gateway.charge(sid, "cust-1", 9900, "order-6", "Plan")
    assert (result.status, result.payment_key) == (ChargeStatus.UNKNOWN, None)
    charges = control.get("/sandbox/kakaopay/charges").json()["charges"]
    assert [(c["orderId"], c["amount"]) for c in charges] == [("order-6", 9900)]
    sent = [r for r in control.get("/sandbox/kakaopay/requests").json()["requests"] if r["path"].endswith("/subscription")]
    assert len(sent) == 1
    again = await gateway.charge(sid, "cust-1", 9900, "order-6", "Plan")  # the same order id: -785, not a second charge
    assert (again.status, again.provider_code) == (ChargeStatus.UNKNOWN, "-785")
    assert len(control.get("/sandbox/kakaopay/charges").json()["charges"]) == 1


async def test_server_errors_and_refused_refunds(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    sid = await register(gateway, control)
    control.post("/sandbox/faults", json={"errorBurst": {"status": 500, "count": 1}}).raise_for_status()
    burst = await gateway.charge(sid, "cust-1", 100, "order-7", "Plan")
    assert burst.status is ChargeStatus.UNKNOWN  # a 5xx from KakaoPay proves nothing
    tid = (await gateway.charge(sid, "cust-1", 100, "order-8", "Plan")).payment_key or ""
    control.post("/sandbox/faults", json={"refuseRefunds": 1}).raise_for_status()
    refused = await gateway.refund(tid, 100, "r", "k1")
    assert (refused.status, refused.provider_code) == (RefundStatus.REFUSED, "-781")
    control.post("/sandbox/faults", json={"dropRefundResponses": 1}).raise_for_status()
    lost = await gateway.refund(tid, 60, "r", "k2")
    assert lost.status is RefundStatus.UNKNOWN
    found = await gateway.lookup_order("order-8", payment_key=tid)
    assert found is not None and found.cancels == (60,)
    control.post("/sandbox/faults", json={"lookupsDown": True}).raise_for_status()
    with pytest.raises(GatewayError) as down:
        await gateway.lookup_order("order-8", payment_key=tid)
    assert down.value.decline_code is DeclineCode.NETWORK_ERROR


async def test_a_wrong_secret_key_or_pg_token_is_refused(sandbox_url: str, gateway: KakaoPayGateway, control: httpx.Client) -> None:
    wrong = KakaoPayGateway(sandbox_url, "PRDNOTATESTKEY", CID, retry_base_seconds=0.01)
    try:
        with pytest.raises(GatewayError):
            await wrong.begin_registration("cust-1", *PAGES)
    finally:
        await wrong.aclose()
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    approve_as_payer(control, redirect.pc_url or "")
    with pytest.raises(GatewayError) as refused:
        await gateway.complete_registration(redirect.registration_id, "not-the-token", "cust-1")
    assert refused.value.provider_code == "-708"


async def test_a_connection_never_opened_is_declined_and_nothing_charged(control: httpx.Client) -> None:
    from gateway_server import closed_port_url

    nowhere = KakaoPayGateway(closed_port_url(), SECRET, CID, retry_base_seconds=0.01)
    try:
        result = await nowhere.charge("S0000000000000000000", "cust-1", 100, "order-9", "Plan")
        with pytest.raises(GatewayError) as lookup:
            await nowhere.lookup_order("order-9", payment_key="T0000000000000000000")
    finally:
        await nowhere.aclose()
    # Never sent (the connection was refused on every try): a definite decline, not an unknown outcome.
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, DeclineCode.NETWORK_ERROR)
    assert lookup.value.decline_code is DeclineCode.NETWORK_ERROR


async def test_latency_and_a_concurrency_cap_still_answer_every_charge(gateway: KakaoPayGateway, control: httpx.Client) -> None:
    import asyncio

    sid = await register(gateway, control)
    control.post("/sandbox/faults", json={"latencyMs": 20, "maxConcurrency": 2}).raise_for_status()
    results = await asyncio.gather(*(gateway.charge(sid, "cust-1", 1000 + n, f"order-c{n}", "Plan") for n in range(6)))
    assert [r.status for r in results] == [ChargeStatus.APPROVED] * 6
    charges = control.get("/sandbox/kakaopay/charges").json()["charges"]
    assert sorted(c["amount"] for c in charges) == [1000 + n for n in range(6)]
    assert sorted(c["amount"] for c in charges) == sorted(r.amount for r in results)
