"""The sandbox gateway's own rules: Toss' API shapes, test cards, idempotency,
refunds, lookups, outcomes and faults (engine and app, in process)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest

from gateways.sandbox_app import SandboxTransport
from gateways.sandbox_engine import KST, Faults, SandboxEngine

AUTH = ("test_sk_sandbox_tests", "")


@pytest.fixture
def engine() -> SandboxEngine:
    return SandboxEngine()


@pytest.fixture
async def client(engine: SandboxEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=SandboxTransport(engine), base_url="http://sandbox", auth=AUTH) as client:
        yield client


async def issue(client: httpx.AsyncClient, card: str = "4300000000000001", customer: str = "cust-1") -> str:
    response = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": f"test_card_{card}", "customerKey": customer}
    )
    assert response.status_code == 200, response.text
    return response.json()["billingKey"]


async def charge(
    client: httpx.AsyncClient, key: str, order_id: str, amount: int = 1000, idempotency_key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    body = {"customerKey": "cust-1", "amount": amount, "orderId": order_id, "orderName": "Premium"}
    return await client.post(f"/v1/billing/{key}", json=body, headers=headers)


async def test_issue_answers_toss_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": "test_card_4300000000000001", "customerKey": "cust-1"}
    )
    body = response.json()
    assert body["customerKey"] == "cust-1" and body["method"] == "카드"
    assert body["billingKey"].startswith("bk_sbx_4300000000000001_")
    assert body["card"]["number"] == "4300********0001"
    assert {"cardType", "ownerType", "issuerCode", "acquirerCode"} <= body["card"].keys()
    assert datetime.fromisoformat(body["authenticatedAt"]).tzinfo is not None


@pytest.mark.parametrize("auth_key", ["test_card_43000000", "card_4300000000000001", "test_card_430000000000000x"])
async def test_malformed_auth_key_is_refused(client: httpx.AsyncClient, auth_key: str) -> None:
    response = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": "cust-1"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_AUTH_KEY")


@pytest.mark.parametrize("auth", [None, ("live_sk_123", ""), ("test_ck_123", "")])
async def test_only_test_secret_keys_are_accepted(engine: SandboxEngine, auth: tuple[str, str] | None) -> None:
    async with httpx.AsyncClient(transport=SandboxTransport(engine), base_url="http://sandbox", auth=auth) as other:
        response = await other.get("/v1/payments/orders/any")
    assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED_KEY")


async def test_charge_answers_a_done_payment(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    response = await charge(client, await issue(client), "order-1", 9900)
    payment = response.json()
    assert response.status_code == 200
    assert payment["status"] == "DONE" and payment["orderId"] == "order-1" and payment["orderName"] == "Premium"
    assert payment["totalAmount"] == payment["balanceAmount"] == 9900
    assert payment["approvedAt"].endswith("+09:00") and payment["requestedAt"].endswith("+09:00")
    assert payment["method"] == "카드" and payment["card"]["number"] == "4300********0001"
    assert payment["cancels"] is None
    receipt = f"http://sandbox/receipt/redirection?transactionId={payment['paymentKey']}"
    assert payment["receipt"] == {"url": receipt}  # Toss' shape, on the base the charge came in on
    assert engine.charges() == [
        {"orderId": "order-1", "amount": 9900, "paymentKey": payment["paymentKey"], "receiptUrl": receipt}
    ]


async def test_an_approval_links_a_receipt_the_sandbox_serves(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    key = await issue(client)
    payment = (await charge(client, key, "order-1", 9900)).json()
    await cancel(client, payment["paymentKey"], 900)
    async with httpx.AsyncClient(transport=SandboxTransport(engine)) as anonymous:  # a receipt needs no secret key
        page = await anonymous.get(payment["receipt"]["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for shown in ("order-1", "Premium", "9,900원", "4300********0001", "PARTIAL_CANCELED", "900원", "9,000원"):
        assert shown in page.text
    assert key not in page.text and "cust-1" not in page.text and "test_sk_" not in page.text
    looked_up = (await client.get("/v1/payments/orders/order-1")).json()
    assert looked_up["receipt"] == payment["receipt"]


async def test_only_approved_payments_have_a_receipt(client: httpx.AsyncClient) -> None:
    declined = await charge(client, await issue(client, "4300000000000002"), "order-1")
    assert declined.status_code == 403
    assert (await client.get("/v1/payments/orders/order-1")).json()["receipt"] is None
    held = (await charge(client, await hold(client), "order-2")).json()
    assert held["receipt"] is None
    for transaction_id in (held["paymentKey"], "sbx_pay_unknown", ""):
        missing = await client.get("/receipt/redirection", params={"transactionId": transaction_id})
        assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND_PAYMENT")
    done = (await client.post("/sandbox/orders/order-2/complete", json={"status": "DONE"})).json()
    assert done["receipt"]["url"] == f"http://sandbox/receipt/redirection?transactionId={held['paymentKey']}"
    assert (await client.get(done["receipt"]["url"])).status_code == 200


@pytest.mark.parametrize(
    ("card", "status", "code"),
    [
        ("4300000000000002", 403, "REJECT_CARD_PAYMENT"),
        ("4300000000000003", 400, "EXCEED_MAX_AMOUNT"),
        ("4300000000000004", 403, "INVALID_STOPPED_CARD"),
    ],
)
async def test_test_cards_decline_and_the_order_is_remembered_aborted(
    client: httpx.AsyncClient, engine: SandboxEngine, card: str, status: int, code: str
) -> None:
    response = await charge(client, await issue(client, card), "order-1")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["message"]
    looked_up = (await client.get("/v1/payments/orders/order-1")).json()
    assert looked_up["status"] == "ABORTED" and looked_up["failure"]["code"] == code
    assert engine.charges() == []


async def test_any_other_well_formed_card_succeeds(client: httpx.AsyncClient) -> None:
    response = await charge(client, await issue(client, "9410123412341234"), "order-1")
    assert response.json()["status"] == "DONE"
    assert response.json()["card"]["number"] == "9410********1234"


async def test_billing_key_stays_chargeable_after_a_restart(client: httpx.AsyncClient) -> None:
    key = await issue(client)
    async with httpx.AsyncClient(
        transport=SandboxTransport(SandboxEngine()), base_url="http://sandbox", auth=AUTH
    ) as restarted:
        assert (await charge(restarted, key, "order-1")).json()["status"] == "DONE"


async def test_billing_key_of_another_customer_is_refused(client: httpx.AsyncClient) -> None:
    key = await issue(client, customer="someone-else")
    response = await charge(client, key, "order-1")
    assert (response.status_code, response.json()["code"]) == (400, "NOT_MATCHES_CUSTOMER_KEY")


async def test_unknown_billing_key(client: httpx.AsyncClient) -> None:
    response = await charge(client, "bk_live_made_up", "order-1")
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND_BILLING_KEY")


@pytest.mark.parametrize("body", [{}, {"customerKey": "c", "amount": "1000", "orderId": "o", "orderName": "n"}])
async def test_malformed_charge_request(client: httpx.AsyncClient, body: dict) -> None:
    response = await client.post(f"/v1/billing/{await issue(client)}", json=body)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("card", ["4300000000000001", "4300000000000002"])
async def test_idempotency_key_replays_the_first_answer_exactly(
    client: httpx.AsyncClient, engine: SandboxEngine, card: str
) -> None:
    key = await issue(client, card)
    first = await charge(client, key, "order-1", idempotency_key="order-1")
    again = await charge(client, key, "order-1", idempotency_key="order-1")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert len(engine.charges()) == (1 if first.status_code == 200 else 0)


@pytest.mark.parametrize("idempotency_key", [None, "another-key"])
async def test_reused_order_id_without_the_same_key_is_a_duplicate(
    client: httpx.AsyncClient, engine: SandboxEngine, idempotency_key: str | None
) -> None:
    key = await issue(client)
    await charge(client, key, "order-1", idempotency_key="order-1")
    response = await charge(client, key, "order-1", idempotency_key=idempotency_key)
    assert (response.status_code, response.json()["code"]) == (400, "DUPLICATED_ORDER_ID")
    assert len(engine.charges()) == 1


async def test_partial_then_full_refund(client: httpx.AsyncClient) -> None:
    payment_key = (await charge(client, await issue(client), "order-1", 10000)).json()["paymentKey"]
    partial = await client.post(
        f"/v1/payments/{payment_key}/cancel", json={"cancelReason": "downgrade", "cancelAmount": 3000}
    )
    assert partial.json()["status"] == "PARTIAL_CANCELED" and partial.json()["balanceAmount"] == 7000
    [cancel] = partial.json()["cancels"]
    assert cancel["cancelAmount"] == 3000 and cancel["cancelReason"] == "downgrade"
    assert cancel["transactionKey"] and cancel["canceledAt"].endswith("+09:00")
    rest = await client.post(f"/v1/payments/{payment_key}/cancel", json={"cancelReason": "cancel"})
    assert rest.json()["status"] == "CANCELED" and rest.json()["balanceAmount"] == 0
    assert [c["cancelAmount"] for c in rest.json()["cancels"]] == [3000, 7000]
    looked_up = (await client.get("/v1/payments/orders/order-1")).json()
    assert (looked_up["status"], looked_up["balanceAmount"]) == ("CANCELED", 0)


async def test_refund_rules(client: httpx.AsyncClient) -> None:
    payment_key = (await charge(client, await issue(client), "order-1", 1000)).json()["paymentKey"]
    cancel = f"/v1/payments/{payment_key}/cancel"
    too_much = await client.post(cancel, json={"cancelReason": "r", "cancelAmount": 1001})
    assert (too_much.status_code, too_much.json()["code"]) == (403, "NOT_CANCELABLE_AMOUNT")
    headers = {"Idempotency-Key": "order-1-refund-1"}
    first = await client.post(cancel, json={"cancelReason": "r", "cancelAmount": 400}, headers=headers)
    again = await client.post(cancel, json={"cancelReason": "r", "cancelAmount": 400}, headers=headers)
    assert first.content == again.content and again.json()["balanceAmount"] == 600
    await client.post(cancel, json={"cancelReason": "r"})
    done = await client.post(cancel, json={"cancelReason": "r", "cancelAmount": 1})
    assert (done.status_code, done.json()["code"]) == (400, "ALREADY_CANCELED_PAYMENT")
    unknown = await client.post("/v1/payments/nope/cancel", json={"cancelReason": "r"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT")


async def test_lookup_of_an_unknown_order(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/payments/orders/never-charged")
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND_PAYMENT")


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("INSUFFICIENT_FUNDS", 403, "REJECT_CARD_PAYMENT"),
        ("LIMIT_EXCEEDED", 400, "EXCEED_MAX_AMOUNT"),
        ("CARD_SUSPENDED", 403, "INVALID_STOPPED_CARD"),
        ("INVALID_BILLING_KEY", 400, "INVALID_BILLING_KEY"),
    ],
)
async def test_outcomes_decline_later_charges(client: httpx.AsyncClient, outcome: str, status: int, code: str) -> None:
    key = await issue(client)
    set_ = await client.post(f"/sandbox/billing/{key}/outcome", json={"outcome": outcome})
    assert set_.status_code == 200
    response = await charge(client, key, "order-1")
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_succeed_outcome_overrides_the_test_card(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    key = await issue(client, "4300000000000004")
    engine.set_outcome(key, "SUCCEED")
    assert (await charge(client, key, "order-1")).json()["status"] == "DONE"


@pytest.mark.parametrize(("outcome", "status"), [("SERVER_ERROR_ONCE", 500), ("RATE_LIMITED_ONCE", 429)])
async def test_once_outcomes_fail_one_request_unprocessed(
    client: httpx.AsyncClient, engine: SandboxEngine, outcome: str, status: int
) -> None:
    key = await issue(client, "4300000000000002")  # "then succeed" overrides the card's default too
    engine.set_outcome(key, outcome)
    failed = await charge(client, key, "order-1", idempotency_key="order-1")
    assert failed.status_code == status and engine.charges() == []
    # Nothing was kept for that key or order: the retry is processed afresh.
    retried = await charge(client, key, "order-1", idempotency_key="order-1")
    assert retried.json()["status"] == "DONE"
    assert [c["orderId"] for c in engine.charges()] == ["order-1"]


async def test_bad_outcome_requests(client: httpx.AsyncClient) -> None:
    key = await issue(client)
    bad = await client.post(f"/sandbox/billing/{key}/outcome", json={"outcome": "EXPLODE"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")
    unknown = await client.post("/sandbox/billing/not-a-key/outcome", json={"outcome": "SUCCEED"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_BILLING_KEY")


async def test_error_burst_answers_before_processing(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    key = await issue(client)
    faults = await client.post("/sandbox/faults", json={"errorBurst": {"status": 503, "count": 2}})
    assert faults.status_code == 200
    statuses = [(await charge(client, key, "order-1", idempotency_key="order-1")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(engine.charges()) == 1


async def test_dropped_response_is_charged_and_cut_off(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    key = await issue(client)
    engine.set_faults(Faults(drop_responses=1))
    with pytest.raises(httpx.RemoteProtocolError):
        await charge(client, key, "order-1", idempotency_key="order-1")
    assert [c["orderId"] for c in engine.charges()] == ["order-1"]
    replay = await charge(client, key, "order-1", idempotency_key="order-1")
    assert replay.json()["paymentKey"] == engine.charges()[0]["paymentKey"]


async def test_refuse_acts_as_down(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    engine.set_faults(Faults(refuse=True))
    with pytest.raises(httpx.ConnectError):
        await client.get("/v1/payments/orders/order-1")
    # Over HTTP the server cannot refuse its own connections: it answers 503 unprocessed.
    reply = await engine.lookup_order("order-1")
    assert reply.status == 503


async def test_same_key_while_the_first_is_processing_is_409(engine: SandboxEngine) -> None:
    key = (await engine.issue_billing_key("test_card_4300000000000001", "cust-1")).body["billingKey"]
    engine.set_faults(Faults(latency_ms=50))
    first, second = await asyncio.gather(
        engine.charge(key, "cust-1", 1000, "order-1", "Premium", idempotency_key="order-1"),
        engine.charge(key, "cust-1", 1000, "order-1", "Premium", idempotency_key="order-1"),
    )
    assert (first.status, second.status, second.body["code"]) == (200, 409, "IDEMPOTENT_REQUEST_PROCESSING")
    assert len(engine.charges()) == 1


async def test_many_concurrent_charges_under_latency_and_a_cap(engine: SandboxEngine) -> None:
    key = (await engine.issue_billing_key("test_card_4300000000000001", "cust-1")).body["billingKey"]
    engine.set_faults(Faults(latency_ms=50, max_concurrency=16))
    replies = await asyncio.gather(
        *(engine.charge(key, "cust-1", 100, f"order-{n}", "Premium", f"order-{n}") for n in range(64))
    )
    assert {r.status for r in replies} == {200}
    assert len(engine.charges()) == 64


@pytest.mark.parametrize(
    "faults",
    [
        {"errorBurst": {"status": 404, "count": 1}},
        {"latencyMs": -1},
        {"refuse": "yes"},
        {"dropResponses": True},
        {"refundLatencyMs": "slow"},
        {"dropRefundResponses": -1},
        {"refuseRefunds": True},
    ],
)
async def test_bad_fault_requests(client: httpx.AsyncClient, faults: dict) -> None:
    response = await client.post("/sandbox/faults", json=faults)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")


async def test_charges_list_and_reset(client: httpx.AsyncClient) -> None:
    key = await issue(client)
    await charge(client, key, "order-1", 500)
    await client.post("/sandbox/faults", json={"latencyMs": 10})
    listed = (await client.get("/sandbox/charges")).json()["charges"]
    assert [(c["orderId"], c["amount"]) for c in listed] == [("order-1", 500)]
    assert (await client.post("/sandbox/reset")).status_code == 200
    assert (await client.get("/sandbox/charges")).json() == {"charges": []}
    # Reset forgets orders too: the order id is free again.
    assert (await charge(client, key, "order-1")).status_code == 200


# -- orders held IN_PROGRESS, refund faults and records, the transaction listing --


async def hold(client: httpx.AsyncClient, card: str = "4300000000000001") -> str:
    key = await issue(client, card)
    held = await client.post(f"/sandbox/billing/{key}/outcome", json={"outcome": "HOLD_IN_PROGRESS"})
    assert held.status_code == 200
    return key


async def cancel(
    client: httpx.AsyncClient, payment_key: str, amount: int | None = None, idempotency_key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    body = {"cancelReason": "r"} | ({"cancelAmount": amount} if amount is not None else {})
    return await client.post(f"/v1/payments/{payment_key}/cancel", json=body, headers=headers)


async def test_held_charges_stay_in_progress_until_completed(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    key = await hold(client, "4300000000000002")  # the hold overrides the test card's decline
    held = await charge(client, key, "order-1", 5000)
    assert held.status_code == 200
    assert (held.json()["status"], held.json()["approvedAt"]) == ("IN_PROGRESS", None)
    assert (await charge(client, key, "order-2")).json()["status"] == "IN_PROGRESS"  # every charge on the key
    assert (await client.get("/v1/payments/orders/order-1")).json()["status"] == "IN_PROGRESS"
    assert engine.charges() == []
    refused = await cancel(client, held.json()["paymentKey"])
    assert (refused.status_code, refused.json()["code"]) == (403, "NOT_CANCELABLE_PAYMENT")
    done = await client.post("/sandbox/orders/order-1/complete", json={"status": "DONE"})
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["balanceAmount"]) == ("DONE", 5000) and done.json()["approvedAt"]
    looked_up = (await client.get("/v1/payments/orders/order-1")).json()
    assert (looked_up["status"], looked_up["paymentKey"]) == ("DONE", held.json()["paymentKey"])
    assert engine.charges() == [
        {"orderId": "order-1", "amount": 5000, "paymentKey": held.json()["paymentKey"], "receiptUrl": done.json()["receipt"]["url"]}
    ]
    assert (await client.get("/v1/payments/orders/order-2")).json()["status"] == "IN_PROGRESS"


async def test_held_charge_completed_as_aborted(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    await charge(client, await hold(client), "order-1")
    aborted = engine.complete_order("order-1", "ABORTED")
    assert aborted["status"] == "ABORTED" and aborted["failure"]["code"] == "REJECT_CARD_PAYMENT"
    assert (await client.get("/v1/payments/orders/order-1")).json()["failure"]["code"] == "REJECT_CARD_PAYMENT"
    assert engine.charges() == []


async def test_complete_order_refuses_what_it_cannot_settle(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/sandbox/orders/never-charged/complete", json={"status": "DONE"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT")
    await charge(client, await issue(client), "order-done")
    settled = await client.post("/sandbox/orders/order-done/complete", json={"status": "DONE"})
    assert settled.status_code == 400
    await charge(client, await hold(client), "order-held")
    bad = await client.post("/sandbox/orders/order-held/complete", json={"status": "CANCELED"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")
    assert (await client.get("/v1/payments/orders/order-held")).json()["status"] == "IN_PROGRESS"


async def test_refunds_are_recorded_once_each(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    payment_key = (await charge(client, await issue(client), "order-1", 10000)).json()["paymentKey"]
    first = await cancel(client, payment_key, 3000, "refund-1")
    await cancel(client, payment_key, 3000, "refund-1")  # a replay, not a new refund
    await cancel(client, payment_key, 2000)
    listed = (await client.get("/sandbox/refunds")).json()["refunds"]
    assert listed == engine.refunds()
    assert [(r["orderId"], r["paymentKey"], r["amount"], r["idempotencyKey"]) for r in listed] == [
        ("order-1", payment_key, 3000, "refund-1"),
        ("order-1", payment_key, 2000, None),
    ]
    assert listed[0]["transactionKey"] == first.json()["cancels"][0]["transactionKey"]
    assert engine.cancelled_total("order-1") == 5000 and engine.cancelled_total("never-charged") == 0


async def test_refused_refunds_are_not_kept_for_the_key(client: httpx.AsyncClient, engine: SandboxEngine) -> None:
    payment_key = (await charge(client, await issue(client), "order-1", 1000)).json()["paymentKey"]
    assert (await client.post("/sandbox/faults", json={"refuseRefunds": 2})).status_code == 200
    for _ in range(2):
        refused = await cancel(client, payment_key, 400, "refund-1")
        assert (refused.status_code, refused.json()["code"]) == (403, "FAILED_REFUND_PROCESS")
        assert refused.json()["message"].startswith("은행 응답시간 지연")
    assert engine.refunds() == [] and engine.cancelled_total("order-1") == 0
    processed = await cancel(client, payment_key, 400, "refund-1")
    assert (processed.status_code, processed.json()["balanceAmount"]) == (200, 600)
    assert len(engine.refunds()) == 1


async def test_dropped_refund_is_processed_cut_off_then_replayed(
    client: httpx.AsyncClient, engine: SandboxEngine
) -> None:
    payment_key = (await charge(client, await issue(client), "order-1", 1000)).json()["paymentKey"]
    engine.set_faults(Faults(drop_refund_responses=1))
    with pytest.raises(httpx.RemoteProtocolError):
        await cancel(client, payment_key, 400, "refund-1")
    assert [r["amount"] for r in engine.refunds()] == [400]
    replay = await cancel(client, payment_key, 400, "refund-1")
    assert replay.json()["balanceAmount"] == 600 and len(replay.json()["cancels"]) == 1
    assert len(engine.refunds()) == 1
    # Only refunds lose their answers: charges are untouched by this fault.
    engine.set_faults(Faults(drop_refund_responses=1))
    assert (await charge(client, await issue(client), "order-2")).status_code == 200


async def test_refund_latency_slows_cancels_only_and_does_not_block(engine: SandboxEngine) -> None:
    key = (await engine.issue_billing_key("test_card_4300000000000001", "cust-1")).body["billingKey"]
    engine.set_faults(Faults(refund_latency_ms=200))
    started = time.monotonic()
    charged = [await engine.charge(key, "cust-1", 1000, f"order-{n}", "Premium") for n in range(2)]
    assert time.monotonic() - started < 0.2
    started = time.monotonic()
    replies = await asyncio.gather(*(engine.cancel(c.body["paymentKey"], "r", 1000) for c in charged))
    elapsed = time.monotonic() - started
    assert {r.status for r in replies} == {200}
    assert 0.2 <= elapsed < 0.35  # concurrent, not one after the other


class PinnedClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 10, 0, 0, 500_000, tzinfo=KST)

    def __call__(self) -> datetime:
        return self.now


async def test_transactions_list_approvals_in_range_page_by_page() -> None:
    clock = PinnedClock()
    engine = SandboxEngine(clock=clock)
    async with httpx.AsyncClient(transport=SandboxTransport(engine), base_url="http://sandbox", auth=AUTH) as client:
        key = await issue(client)
        for n in range(5):  # approved at 10:00:00.5, 10:01:00.5, … 10:04:00.5 KST
            await charge(client, key, f"order-{n}", 1000 * (n + 1))
            clock.now += timedelta(minutes=1)
        await charge(client, await issue(client, "4300000000000002"), "order-declined")
        await charge(client, await hold(client), "order-held")

        async def page(start: str, end: str, **more: object) -> httpx.Response:
            return await client.get("/v1/transactions", params={"startDate": start, "endDate": end, **more})

        everything = (await page("2024-03-01T00:00:00", "2024-03-01T23:59:59")).json()
        assert [t["orderId"] for t in everything] == [f"order-{n}" for n in range(5)]
        first = everything[0]
        assert first.keys() >= {"mId", "transactionKey", "paymentKey", "orderId", "currency", "method", "customerKey"}
        assert (first["amount"], first["status"], first["transactionAt"]) == (1000, "DONE", "2024-03-01T10:00:00+09:00")
        assert (first["customerKey"], first["useEscrow"]) == ("cust-1", False)

        seen: list[list[str]] = []
        after: str | None = None
        while True:
            cursor = {"startingAfter": after} if after else {}
            got = (await page("2024-03-01T00:00:00", "2024-03-01T23:59:59", limit=2, **cursor)).json()
            seen.append([t["orderId"] for t in got])
            if len(got) < 2:
                break
            after = got[-1]["transactionKey"]
        assert seen == [["order-0", "order-1"], ["order-2", "order-3"], ["order-4"]]

        # Korean local time without an offset; endDate covers its whole last second only when
        # given to the second.
        assert [t["orderId"] for t in (await page("2024-03-01T10:01:00", "2024-03-01T10:03:00")).json()] == [
            "order-1", "order-2", "order-3"
        ]
        assert [t["orderId"] for t in (await page("2024-03-01T10:01:00.000", "2024-03-01T10:03:00.000")).json()] == [
            "order-1", "order-2"
        ]
        with_offset = (await page("2024-03-01T01:00:00Z", "2024-03-01T01:01:00Z")).json()
        assert [t["orderId"] for t in with_offset] == ["order-0", "order-1"]

        # A held order is listed once approved, at its approval time.
        engine.complete_order("order-held", "DONE")
        latest = (await page("2024-03-01T10:04:01", "2024-03-01T23:59:59")).json()
        assert [t["orderId"] for t in latest] == ["order-held"]

        bad_cursor = await page("2024-03-01T00:00:00", "2024-03-01T23:59:59", startingAfter="nope")
        assert (bad_cursor.status_code, bad_cursor.json()["code"]) == (400, "INVALID_TRANSACTION_KEY")
        for params in ({"startDate": "2024-03-01T00:00:00"}, {"startDate": "yesterday", "endDate": "today"}):
            bad = await client.get("/v1/transactions", params=params)
            assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")
        too_many = await page("2024-03-01T00:00:00", "2024-03-01T23:59:59", limit=10001)
        assert too_many.status_code == 400
    async with httpx.AsyncClient(transport=SandboxTransport(engine), base_url="http://sandbox") as anonymous:
        params = {"startDate": "2024-03-01T00:00:00", "endDate": "2024-03-02T00:00:00"}
        unauthorized = await anonymous.get("/v1/transactions", params=params)
        assert unauthorized.status_code == 401


async def test_transactions_show_the_order_status_after_a_refund(engine: SandboxEngine) -> None:
    key = (await engine.issue_billing_key("test_card_4300000000000001", "cust-1")).body["billingKey"]
    payment = (await engine.charge(key, "cust-1", 1000, "order-1", "Premium")).body
    await engine.cancel(payment["paymentKey"], "r", 1000)
    now = datetime.now(KST).replace(tzinfo=None)
    hour = timedelta(hours=1)
    listed = await engine.list_transactions((now - hour).isoformat(), (now + hour).isoformat())
    assert [(t["orderId"], t["status"], t["amount"]) for t in listed.body] == [("order-1", "CANCELED", 1000)]
