"""NaverPayGateway against NaverPay's look-alike in the sandbox gateway server, over real HTTP:
each endpoint's request (method, path, headers, body) as the sources in `gateways/naverpay.py`
show it, each result code's mapping, the faults."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from domain.ports import ChargeStatus, DeclineCode, GatewayError, RefundStatus
from gateways.naverpay import NaverPayGateway
from gateways.naverpay_objects import decline_code_for, parse_ymdt, ymdt
from gateway_server import closed_port_url, sandbox_control, serve_sandbox

PARTNER, CLIENT, SECRET, CHAIN = "np_test00001", "client-1", "test_naver_secret", "chain-1"
PAGES = ("https://shop.example/naver/return", "https://shop.example/naver/cancel", "https://shop.example/naver/fail")
FORM = "application/x-www-form-urlencoded"
API = f"/{PARTNER}/naverpay/payments/"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    with sandbox_control(sandbox_url) as client:
        yield client


def naver(url: str, secret: str = SECRET) -> NaverPayGateway:
    return NaverPayGateway(url, PARTNER, CLIENT, secret, CHAIN, page_url=f"{url}/sandbox/naverpay", retry_base_seconds=0.01)


@pytest.fixture
async def gateway(sandbox_url: str, control: httpx.Client) -> AsyncIterator[NaverPayGateway]:
    gateway = naver(sandbox_url)
    yield gateway
    await gateway.aclose()


def requests_to(control: httpx.Client, api: str) -> list[dict]:
    return [r for r in control.get("/sandbox/naverpay/requests").json()["requests"] if r["path"] == API + api]


def assert_documented(request: dict, api: str, body: dict | None, form: bool = True, key: str | None = None) -> None:
    assert (request["method"], request["path"]) == ("POST", API + api)
    headers = request["headers"]
    assert (headers["x-naver-client-id"], headers["x-naver-client-secret"], headers["x-naverpay-chain-id"]) == (CLIENT, SECRET, CHAIN)
    assert headers["x-naverpay-idempotency-key"] == key
    assert (request["contentType"] or "").startswith(FORM if form else "application/json")
    assert request["body"] == body


def approve_as_payer(control: httpx.Client, page_url: str) -> str:
    answer = control.get(urlsplit(page_url).path)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == PAGES[0]
    query = parse_qs(location.query)
    assert query["resultCode"] == ["Success"]
    return query["tempReceiptId"][0]


async def register(gateway: NaverPayGateway, control: httpx.Client, customer: str = "cust-1") -> str:
    redirect = await gateway.begin_registration(customer, *PAGES)
    token = approve_as_payer(control, redirect.pc_url or "")
    return (await gateway.complete_registration(redirect.registration_id, token, customer)).billing_key


async def test_regist_reserve_sends_the_documented_request(gateway: NaverPayGateway, control: httpx.Client) -> None:
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    [request] = requests_to(control, "recurrent/regist/v1/reserve")
    assert_documented(request, "recurrent/regist/v1/reserve", {
        "actionType": "NEW", "productCode": "SUBLEDGER", "productName": "정기결제 등록", "totalPayAmount": "0", "returnUrl": PAGES[0],
        "merchantUserId": "cust-1",
    })
    assert redirect.pc_url and redirect.pc_url.endswith(f"/payments/{redirect.registration_id}")


async def test_regist_approval_sends_the_documented_request_and_yields_the_recurrent_id(
    gateway: NaverPayGateway, control: httpx.Client,
) -> None:
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    temp = approve_as_payer(control, redirect.pc_url or "")
    issued = await gateway.complete_registration(redirect.registration_id, temp, "cust-1")
    [request] = requests_to(control, "recurrent/regist/v1/approval")
    assert_documented(request, "recurrent/regist/v1/approval", {"reserveId": redirect.registration_id, "tempReceiptId": temp})
    assert issued.billing_key.startswith("RC") and issued.card_masked == "NaverPay"
    with pytest.raises(GatewayError) as again:  # a registration completes once
        await gateway.complete_registration(redirect.registration_id, temp, "cust-1")
    assert again.value.provider_code == "AlreadyComplete"


async def test_a_payer_who_cancels_comes_back_without_a_temp_receipt(gateway: NaverPayGateway, control: httpx.Client) -> None:
    redirect = await gateway.begin_registration("cust-1", *PAGES)
    answer = control.get(urlsplit(redirect.pc_url or "").path, params={"result": "cancel"})
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert (query["resultCode"], "tempReceiptId" in query) == (["UserCancel"], False)
    with pytest.raises(GatewayError) as refused:
        await gateway.complete_registration(redirect.registration_id, "TPNOTISSUED", "cust-1")
    assert refused.value.provider_code == "TimeExpired"


async def test_a_charge_reserves_then_approves_with_the_documented_requests(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    result = await gateway.charge(recurrent, "cust-1", 9900, "order-1", "Basic plan")
    [reserve] = requests_to(control, "recurrent/pay/v3/reserve")
    assert_documented(reserve, "recurrent/pay/v3/reserve", {
        "recurrentId": recurrent, "totalPayAmount": "9900", "taxScopeAmount": "9900", "taxExScopeAmount": "0",
        "productName": "Basic plan", "merchantPayId": "order-1", "merchantUserId": "cust-1",
    })
    [approval] = requests_to(control, "recurrent/pay/v3/approval")
    assert_documented(approval, "recurrent/pay/v3/approval", {"recurrentId": recurrent, "paymentId": result.payment_key},
                      key="order-1")
    assert (result.status, result.amount, result.gateway_status) == (ChargeStatus.APPROVED, 9900, "DONE")
    charges = control.get("/sandbox/naverpay/charges").json()["charges"]
    assert [(c["orderId"], c["paymentId"], c["amount"]) for c in charges] == [("order-1", result.payment_key, 9900)]


async def test_cancel_sends_the_documented_request_whole_and_part(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    payment_id = (await gateway.charge(recurrent, "cust-1", 10000, "order-2", "Plan")).payment_key or ""
    part = await gateway.refund(payment_id, 3000, "partial", "refund-key-1")
    assert_documented(requests_to(control, "v1/cancel")[-1], "v1/cancel", {
        "paymentId": payment_id, "cancelAmount": "3000", "cancelReason": "partial", "cancelRequester": "2",
        "taxScopeAmount": "3000", "taxExScopeAmount": "0",
    }, key="refund-key-1")
    rest = await gateway.refund(payment_id, 7000, "rest", "refund-key-2")
    assert (part.status, part.refunded_amount, rest.status, rest.refunded_amount) == (RefundStatus.DONE, 3000, RefundStatus.DONE, 7000)
    over = await gateway.refund(payment_id, 1, "nothing left", "refund-key-3")
    assert (over.status, over.provider_code) == (RefundStatus.REFUSED, "Fail")
    refunds = control.get("/sandbox/naverpay/refunds").json()["refunds"]
    assert [(r["paymentId"], r["amount"]) for r in refunds] == [(payment_id, 3000), (payment_id, 7000)]


async def test_a_repeated_refund_key_refunds_once(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    payment_id = (await gateway.charge(recurrent, "cust-1", 5000, "order-r", "Plan")).payment_key or ""
    first = await gateway.refund(payment_id, 2000, "r", "same-key")
    second = await gateway.refund(payment_id, 2000, "r", "same-key")  # 409 with the first answer
    assert (first.status, second.status) == (RefundStatus.DONE, RefundStatus.DONE)
    assert [r["amount"] for r in control.get("/sandbox/naverpay/refunds").json()["refunds"]] == [2000]


async def test_lookups_by_payment_id_and_by_order_id(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    payment_id = (await gateway.charge(recurrent, "cust-1", 5000, "order-3", "Points")).payment_key or ""
    await gateway.refund(payment_id, 2000, "part", "k")
    found = await gateway.lookup_order("order-3", payment_key=payment_id)
    assert_documented(requests_to(control, f"v2.3/list/history/{payment_id}")[-1], f"v2.3/list/history/{payment_id}",
                      None, form=False)
    assert found is not None
    assert (found.status, found.gateway_status, found.amount, found.cancels) == (ChargeStatus.APPROVED, "PARTIAL_CANCELED", 5000, (2000,))
    by_order = await gateway.lookup_order("order-3")
    period = requests_to(control, "v2.3/list/history")[-1]
    assert set(period["body"]) == {"startTime", "endTime", "pageNumber", "rowsPerPage"}
    assert (period["body"]["pageNumber"], len(period["body"]["startTime"])) == (1, 14)
    assert by_order == found
    assert await gateway.lookup_order("order-never") is None
    assert found.approved_at is not None
    listed = await gateway.list_transactions(found.approved_at - timedelta(days=1), found.approved_at + timedelta(days=1))
    assert [(t.order_id, t.payment_key, t.amount) for t in listed] == [("order-3", payment_id, 5000)]


async def test_a_listing_longer_than_31_days_is_asked_in_periods_naverpay_answers(
    gateway: NaverPayGateway, control: httpx.Client,
) -> None:
    recurrent = await register(gateway, control)
    payment_id = (await gateway.charge(recurrent, "cust-1", 4000, "order-long", "Plan")).payment_key or ""
    now = datetime.now(timezone.utc)
    listed = await gateway.list_transactions(now - timedelta(days=40), now + timedelta(minutes=1))
    assert [(t.order_id, t.payment_key, t.amount) for t in listed] == [("order-long", payment_id, 4000)]
    periods = [(parse_ymdt(r["body"]["startTime"]), parse_ymdt(r["body"]["endTime"]))
               for r in requests_to(control, "v2.3/list/history")]
    assert len(periods) == 2 and all(end - start <= timedelta(days=31) for start, end in periods)  # type: ignore[operator]
    assert periods[1][0] - periods[0][1] == timedelta(seconds=1)  # type: ignore[operator]  # no gap, no overlap
    refused = control.post(f"{API}v2.3/list/history", json={"startTime": ymdt(now - timedelta(days=32)), "endTime": ymdt(now)},
                           headers={"X-Naver-Client-Id": CLIENT, "X-Naver-Client-Secret": SECRET, "X-NaverPay-Chain-Id": CHAIN})
    assert refused.json()["code"] == "Fail"  # the look-alike, like NaverPay, answers at most 31 days


async def test_a_cancel_naverpay_completes_itself_is_done_and_never_sent_again(
    gateway: NaverPayGateway, control: httpx.Client,
) -> None:
    recurrent = await register(gateway, control)
    payment_id = (await gateway.charge(recurrent, "cust-1", 8000, "order-later", "Plan")).payment_key or ""
    control.post("/sandbox/naverpay/cancels-later", json={"count": 1}).raise_for_status()
    later = await gateway.refund(payment_id, 3000, "later", "refund-later")
    assert (later.status, later.provider_code, later.refunded_amount) == (RefundStatus.DONE, "CancelNotComplete", 3000)
    other = await gateway.refund(payment_id, 1000, "other", "refund-other")  # NaverPay refuses it meanwhile
    assert (other.status, other.provider_code) == (RefundStatus.REFUSED, "PreCancelNotComplete")
    pending = await gateway.lookup_order("order-later", payment_key=payment_id)
    assert pending is not None and (pending.gateway_status, pending.cancels) == ("DONE", ())
    assert control.post("/sandbox/naverpay/complete-cancels").json() == {"completed": 1}
    done = await gateway.lookup_order("order-later", payment_key=payment_id)
    assert done is not None and (done.gateway_status, done.cancels) == ("PARTIAL_CANCELED", (3000,))
    assert [r["amount"] for r in control.get("/sandbox/naverpay/refunds").json()["refunds"]] == [3000]
    assert len(requests_to(control, "v1/cancel")) == 2


async def test_an_approval_for_another_recurrent_id_is_refused(gateway: NaverPayGateway, control: httpx.Client) -> None:
    mine, other = await register(gateway, control), await register(gateway, control)
    result = await gateway.charge(mine, "cust-1", 100, "order-mine", "Plan")
    answer = control.post(f"{API}recurrent/pay/v3/approval", data={"recurrentId": other, "paymentId": result.payment_key},
                          headers={"X-Naver-Client-Id": CLIENT, "X-Naver-Client-Secret": SECRET, "X-NaverPay-Chain-Id": CHAIN})
    assert answer.json()["code"] == "Fail"


@pytest.mark.parametrize(("code", "decline"), [
    ("Fail", DeclineCode.INSUFFICIENT_FUNDS), ("OwnerAuthFail", DeclineCode.CARD_SUSPENDED),
    ("InvalidMerchant", DeclineCode.OTHER), ("TimeExpired", DeclineCode.OTHER),
    ("AlreadyOnGoing", DeclineCode.OTHER), ("AlreadyComplete", DeclineCode.OTHER), ("Unheard", DeclineCode.OTHER),
    (None, DeclineCode.OTHER),
])
def test_result_code_mapping(code: str | None, decline: DeclineCode) -> None:
    assert decline_code_for(code) is decline
    assert decline_code_for(code, 500) is DeclineCode.PROVIDER_ERROR
    assert decline_code_for(code, 429) is DeclineCode.PROVIDER_ERROR


@pytest.mark.parametrize(("outcome", "code", "decline"), [
    ("INSUFFICIENT_FUNDS", "Fail", DeclineCode.INSUFFICIENT_FUNDS),
    ("CARD_SUSPENDED", "OwnerAuthFail", DeclineCode.CARD_SUSPENDED),
])
async def test_declines_over_http(gateway: NaverPayGateway, control: httpx.Client, outcome: str, code: str, decline: DeclineCode) -> None:
    recurrent = await register(gateway, control)
    control.post(f"/sandbox/naverpay/recurrents/{recurrent}/outcome", json={"outcome": outcome}).raise_for_status()
    result = await gateway.charge(recurrent, "cust-1", 9900, f"order-{uuid.uuid4()}", "Plan")
    assert (result.status, result.provider_code, result.decline_code) == (ChargeStatus.DECLINED, code, decline)
    assert control.get("/sandbox/naverpay/charges").json()["charges"] == []


async def test_a_repeated_order_replays_the_first_approval_and_charges_once(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    first = await gateway.charge(recurrent, "cust-1", 100, "order-dup", "Plan")
    again = await gateway.charge(recurrent, "cust-1", 100, "order-dup", "Plan")  # a new reservation, the same key
    assert (again.status, again.payment_key, again.amount) == (ChargeStatus.APPROVED, first.payment_key, 100)
    assert len(control.get("/sandbox/naverpay/charges").json()["charges"]) == 1


async def test_another_customer_is_declined_at_the_reservation(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    other = await gateway.charge(recurrent, "cust-2", 100, "order-4", "Plan")
    assert (other.status, other.provider_code) == (ChargeStatus.DECLINED, "Fail")
    assert requests_to(control, "recurrent/pay/v3/approval") == []


async def test_a_dropped_approval_is_unknown_sent_once_and_settled_by_lookup(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    control.post("/sandbox/faults", json={"dropResponses": 1}).raise_for_status()
    result = await gateway.charge(recurrent, "cust-1", 9900, "order-6", "Plan")
    assert result.status is ChargeStatus.UNKNOWN
    assert len(requests_to(control, "recurrent/pay/v3/approval")) == 1
    charges = control.get("/sandbox/naverpay/charges").json()["charges"]
    assert [(c["orderId"], c["amount"]) for c in charges] == [("order-6", 9900)]
    found = await gateway.lookup_order("order-6")  # the settle job knows only the order id
    assert found is not None and (found.status, found.amount, found.payment_key) == (
        ChargeStatus.APPROVED, 9900, charges[0]["paymentId"])


async def test_server_errors_refused_and_lost_refunds_and_lookups_down(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    control.post("/sandbox/faults", json={"errorBurst": {"status": 500, "count": 2}}).raise_for_status()
    retried = await gateway.charge(recurrent, "cust-1", 100, "order-7a", "Plan")
    assert retried.status is ChargeStatus.APPROVED  # the reservation charges nothing: retried past the 5xx
    assert len(requests_to(control, "recurrent/pay/v3/reserve")) == 3
    control.post(f"/sandbox/naverpay/recurrents/{recurrent}/outcome", json={"outcome": "SERVER_ERROR_ONCE"}).raise_for_status()
    burst = await gateway.charge(recurrent, "cust-1", 100, "order-7", "Plan")
    assert burst.status is ChargeStatus.UNKNOWN  # the approval's 5xx proves nothing, and it is not sent again
    assert len(requests_to(control, "recurrent/pay/v3/approval")) == 2
    payment_id = (await gateway.charge(recurrent, "cust-1", 100, "order-8", "Plan")).payment_key or ""
    control.post("/sandbox/faults", json={"refuseRefunds": 1}).raise_for_status()
    refused = await gateway.refund(payment_id, 100, "r", "k1")
    assert (refused.status, refused.provider_code) == (RefundStatus.REFUSED, "Fail")
    control.post("/sandbox/faults", json={"dropRefundResponses": 1}).raise_for_status()
    lost = await gateway.refund(payment_id, 60, "r", "k2")
    assert lost.status is RefundStatus.UNKNOWN
    found = await gateway.lookup_order("order-8", payment_key=payment_id)
    assert found is not None and found.cancels == (60,)
    control.post("/sandbox/faults", json={"lookupsDown": True}).raise_for_status()
    with pytest.raises(GatewayError) as down:
        await gateway.lookup_order("order-8")
    assert down.value.decline_code is DeclineCode.NETWORK_ERROR


async def test_wrong_credentials_are_refused(sandbox_url: str, control: httpx.Client) -> None:
    wrong = naver(sandbox_url, secret="live_not_a_test_secret")
    try:
        with pytest.raises(GatewayError) as refused:
            await wrong.begin_registration("cust-1", *PAGES)
    finally:
        await wrong.aclose()
    assert refused.value.provider_code == "InvalidMerchant"


async def test_a_connection_never_opened_is_declined_and_nothing_charged(control: httpx.Client) -> None:
    nowhere = naver(closed_port_url())
    try:
        result = await nowhere.charge("RC0000", "cust-1", 100, "order-9", "Plan")
        with pytest.raises(GatewayError) as lookup:
            await nowhere.lookup_order("order-9")
    finally:
        await nowhere.aclose()
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, DeclineCode.NETWORK_ERROR)
    assert lookup.value.decline_code is DeclineCode.NETWORK_ERROR


async def test_latency_and_a_concurrency_cap_still_answer_every_charge(gateway: NaverPayGateway, control: httpx.Client) -> None:
    recurrent = await register(gateway, control)
    control.post("/sandbox/faults", json={"latencyMs": 20, "maxConcurrency": 2}).raise_for_status()
    results = await asyncio.gather(*(gateway.charge(recurrent, "cust-1", 1000 + n, f"order-c{n}", "Plan") for n in range(6)))
    assert [r.status for r in results] == [ChargeStatus.APPROVED] * 6
    charges = control.get("/sandbox/naverpay/charges").json()["charges"]
    assert sorted(c["amount"] for c in charges) == sorted(r.amount for r in results) == [1000 + n for n in range(6)]
