"""`POST /webhooks/toss` over real HTTP: the sandbox, served by uvicorn as Toss, sends its
payment notifications to the API, served by uvicorn, with TOSS as the provider. The body is
never believed: each test checks the ledger and the gateway's own record to the won, and
that a forged, repeated or late notice changes nothing. Both databases."""
from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from tests.api.conftest import GOOD_CARD, Api
from tests.api.test_money import payments_of, reconcile
from tests.servers import serve_asgi

REGISTER = """mutation($k: String!, $c: String!) {
  registerPaymentMethod(input: {provider: TOSS, authKey: $k, customerKey: $c}) { id } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) {
  payment { id orderId amount status } } }"""
REFUND = """mutation($p: ID!, $a: Int) { refundPayment(input: {paymentId: $p, amount: $a, reason: "asked"}) {
  refundedAmount status } }"""
WALLET = "{ wallet { usableBalance pendingBalance } }"
VERIFY = "mutation { verifyLedger { eventsReplayed mismatches } }"
TOSS_KEY = "test_sk_webhook_tests"


@pytest.fixture(scope="module")
def toss() -> Iterator[tuple[str, SandboxEngine]]:
    """The sandbox as Toss: its own uvicorn server, shared by the module."""
    engine = SandboxEngine()
    with serve_asgi(create_app(engine), lifespan="off") as url:
        yield url, engine


class Toss:
    """The provider's side, over its own HTTP API: the Toss API, its dashboard, its notices."""

    def __init__(self, url: str, api: Api) -> None:
        self.client = httpx.Client(base_url=url, timeout=30, verify=client_ssl_context())
        self.webhook_url = f"{api.url}/webhooks/toss"
        auth = base64.b64encode(f"{TOSS_KEY}:".encode()).decode()
        self.auth = {"Authorization": f"Basic {auth}"}

    def notify(self, hold: bool = False) -> None:
        self.client.post("/sandbox/webhooks", json={"url": self.webhook_url, "hold": hold}).raise_for_status()

    def notices(self) -> list[dict[str, Any]]:
        """The sandbox's own notices (not the forged ones), oldest first."""
        return [n for n in self.client.get("/sandbox/webhooks").json()["notices"] if not n["forged"]]

    def deliver(self, notice_id: int) -> int:
        return self.client.post(f"/sandbox/webhooks/{notice_id}/deliver").raise_for_status().json()["status"]

    def send(self, body: Any) -> int:
        """A notification of the test's own making, sent from where Toss' come from."""
        return self.client.post("/sandbox/webhooks/send", json={"body": body}).raise_for_status().json()["status"]

    def payment(self, order_id: str) -> dict[str, Any]:
        return self.client.get(f"/v1/payments/orders/{order_id}", headers=self.auth).raise_for_status().json()

    def complete(self, order_id: str, status: str = "DONE") -> None:
        self.client.post(f"/sandbox/orders/{order_id}/complete", json={"status": status}).raise_for_status()

    def dashboard_cancel(self, payment_key: str, amount: int | None = None) -> dict[str, Any]:
        body = {"cancelReason": "customer called"} | ({"cancelAmount": amount} if amount else {})
        return self.client.post(f"/sandbox/dashboard/payments/{payment_key}/cancel", json=body).raise_for_status().json()

    def hold_charges(self, billing_key: str) -> None:
        self.client.post(f"/sandbox/billing/{billing_key}/outcome", json={"outcome": "HOLD_IN_PROGRESS"}).raise_for_status()

    def charged(self, order_id: str) -> int:
        return sum(c["amount"] for c in self.client.get("/sandbox/charges").json()["charges"] if c["orderId"] == order_id)

    def refunded(self, order_id: str) -> int:
        return sum(r["amount"] for r in self.client.get("/sandbox/refunds").json()["refunds"] if r["orderId"] == order_id)

    def faults(self, **faults: Any) -> None:
        self.client.post("/sandbox/faults", json=faults).raise_for_status()


@pytest.fixture
def setup(api_factory: Any, toss: tuple[str, SandboxEngine]) -> Callable[..., tuple[Api, Toss]]:
    def start(**settings: Any) -> tuple[Api, Toss]:
        url, engine = toss
        engine.reset()
        api = api_factory(gateway="toss", toss_base_url=url, toss_secret_key=TOSS_KEY, **settings)
        return api, Toss(url, api)

    return start


def buy(api: Api, toss: Toss, user: str, held: bool = False) -> dict[str, Any]:
    method = api.gql(REGISTER, {"k": GOOD_CARD, "c": f"cust-{user}"}, user=user)["registerPaymentMethod"]["id"]
    if held:
        toss.hold_charges(api.built.ledger.customer(user).payment_methods[method]["billing_key"])
    return api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]["payment"]


def ledger_payment(api: Api, payment_id: str) -> Any:
    return api.built.ledger.payment(payment_id)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_both_sides(api: Api, toss: Toss, user: str, status: str, amount: int, refunded: int) -> None:
    """The ledger (over the API) and the gateway's own record agree to the won, and reconcile is clean."""
    payment = payments_of(api, user)[0]
    assert (payment["status"], payment["amount"], payment["refundedAmount"]) == (status, amount, refunded)
    assert toss.charged(payment["orderId"]) == amount
    assert toss.refunded(payment["orderId"]) == refunded
    report = reconcile(api)
    assert report["clean"], report["disagreements"]


# ------------------------------------------------------------------ what the notices settle


def test_a_pending_charge_is_settled_by_its_notice_before_any_settle_run(setup: Any, user: str) -> None:
    api, toss = setup()
    toss.notify()
    started = api.gql("{ clock { now } }")["clock"]["now"]
    payment = buy(api, toss, user, held=True)
    assert payment["status"] == "PENDING"
    assert api.gql(WALLET, user=user)["wallet"] == {"usableBalance": 0, "pendingBalance": 5500}

    toss.complete(payment["orderId"])  # Toss approves it later and notifies
    wait_for(lambda: ledger_payment(api, payment["id"]).status == "SUCCEEDED", "the notice to settle the charge")

    assert api.gql("{ clock { now } }")["clock"]["now"] == started  # no daily run has happened
    assert api.gql(WALLET, user=user)["wallet"] == {"usableBalance": 5500, "pendingBalance": 0}
    assert_both_sides(api, toss, user, "SUCCEEDED", 5000, 0)
    wait_for(lambda: [n["deliveries"] for n in toss.notices()] == [[200]], "the one notice, answered 200")


def test_a_refund_made_in_the_dashboard_is_recorded_as_a_refund(setup: Any, user: str) -> None:
    api, toss = setup()
    toss.notify()
    payment = buy(api, toss, user)
    key = toss.payment(payment["orderId"])["paymentKey"]

    toss.dashboard_cancel(key, 2000)
    wait_for(lambda: ledger_payment(api, payment["id"]).refunded_amount == 2000, "the dashboard refund")
    assert_both_sides(api, toss, user, "PARTIALLY_REFUNDED", 5000, 2000)
    recorded = ledger_payment(api, payment["id"]).refunds
    assert [(r.amount, r.status.value, r.key) for r in recorded] == [(2000, "SUCCEEDED", f"{payment['orderId']}-px1")]

    # A refund through the API afterwards: its own cancel is notified too, and counted once.
    assert api.gql(REFUND, {"p": payment["id"], "a": 1000}, user="ops", scope="admin")["refundPayment"][
        "refundedAmount"] == 3000
    wait_for(lambda: all(n["deliveries"] for n in toss.notices()), "the refund's notice")
    toss.dashboard_cancel(key)  # the rest, in the dashboard again
    wait_for(lambda: ledger_payment(api, payment["id"]).status == "REFUNDED", "the second dashboard refund")
    assert_both_sides(api, toss, user, "REFUNDED", 5000, 5000)
    assert [r.amount for r in ledger_payment(api, payment["id"]).refunds] == [2000, 1000, 2000]
    api.settle_read_models()
    report = api.gql(VERIFY, user="audit", scope="auditor")["verifyLedger"]
    assert report["eventsReplayed"] > 0 and report["mismatches"] == [], report


# ------------------------------------------------------------------ repeats, reordering, failures


def test_a_repeated_notice_changes_nothing(setup: Any, user: str) -> None:
    api, toss = setup()
    toss.notify(hold=True)
    payment = buy(api, toss, user, held=True)
    toss.complete(payment["orderId"])
    assert toss.deliver(1) == 200
    settled = ledger_payment(api, payment["id"])
    wallet = api.built.ledger.wallet(user)
    assert settled.status == "SUCCEEDED"
    for _ in range(3):
        assert toss.deliver(1) == 200
    assert ledger_payment(api, payment["id"]).version == settled.version
    assert api.built.ledger.wallet(user).version == wallet.version

    toss.dashboard_cancel(settled.payment_key, 1500)
    for _ in range(3):
        assert toss.deliver(2) == 200
    assert [r.amount for r in ledger_payment(api, payment["id"]).refunds] == [1500]
    assert_both_sides(api, toss, user, "PARTIALLY_REFUNDED", 5000, 1500)


@pytest.mark.parametrize("cancelled", [5000, 1500], ids=["full", "partial"])
def test_a_cancel_notice_before_the_done_notice_ends_right(setup: Any, user: str, cancelled: int) -> None:
    api, toss = setup()
    toss.notify(hold=True)
    payment = buy(api, toss, user, held=True)
    toss.complete(payment["orderId"])  # notice 1: DONE
    toss.dashboard_cancel(toss.payment(payment["orderId"])["paymentKey"], cancelled)  # notice 2: (PARTIAL_)CANCELED
    assert [n["body"]["data"]["status"] for n in toss.notices()] == [
        "DONE", "CANCELED" if cancelled == 5000 else "PARTIAL_CANCELED"]

    assert toss.deliver(2) == 200
    assert toss.deliver(1) == 200  # late: Toss no longer holds DONE, so it is not acted on
    if cancelled == 1500:
        assert_both_sides(api, toss, user, "PARTIALLY_REFUNDED", 5000, cancelled)
        assert ledger_payment(api, payment["id"]).paid_at is not None
        return
    # Wholly given back before the ledger heard: FAILED, as the settle run settles CANCELED at
    # lookup. The gateway took 5,000 and gave 5,000 back; the ledger counts nothing paid and
    # credited nothing, and reconciliation names the order for a person to look at.
    settled = ledger_payment(api, payment["id"])
    assert settled.status.value == "FAILED" and settled.paid_at is None
    assert (toss.charged(payment["orderId"]), toss.refunded(payment["orderId"])) == (5000, 5000)
    assert api.gql(WALLET, user=user)["wallet"] == {"usableBalance": 0, "pendingBalance": 0}
    report = reconcile(api)
    assert [(d["orderId"], d["finding"]) for d in report["disagreements"]] == [
        (payment["orderId"], "CHARGED_NOT_SUCCEEDED")]


def test_a_notice_toss_cannot_confirm_now_is_refused_for_a_retry(setup: Any, user: str) -> None:
    api, toss = setup()
    toss.notify(hold=True)
    payment = buy(api, toss, user, held=True)
    toss.complete(payment["orderId"])
    toss.faults(lookupsDown=True)
    assert toss.deliver(1) == 503  # Toss sends it again later
    assert ledger_payment(api, payment["id"]).status == "PENDING"
    toss.faults()
    assert toss.deliver(1) == 200
    assert_both_sides(api, toss, user, "SUCCEEDED", 5000, 0)


# ------------------------------------------------------------------ forged notices


def notice(data: dict[str, Any], event: str = "PAYMENT_STATUS_CHANGED") -> dict[str, Any]:
    return {"eventType": event, "createdAt": "2026-03-01T10:00:00.000000", "data": data}


def test_forged_notices_change_nothing(setup: Any, user: str) -> None:
    api, toss = setup()
    toss.notify(hold=True)
    payment = buy(api, toss, user, held=True)
    order = toss.payment(payment["orderId"])
    assert order["status"] == "IN_PROGRESS"
    real = {"paymentKey": order["paymentKey"], "orderId": order["orderId"], "totalAmount": 5000}

    def unchanged() -> None:
        assert ledger_payment(api, payment["id"]).version == 1  # recorded PENDING, nothing since

    with capture_logs() as logs:
        assert toss.send(notice(real | {"status": "DONE"})) == 200  # Toss: still IN_PROGRESS
        unchanged()
        assert toss.send(notice({"paymentKey": "sbx_pay_never_issued", "status": "DONE"})) == 200
        unchanged()
        toss.complete(payment["orderId"])  # now DONE at Toss, its notice held back
        assert toss.send(notice(real | {"status": "DONE", "totalAmount": 50})) == 200
        assert toss.send(notice(real | {"status": "DONE", "orderId": "someone-elses-order"})) == 200
        assert toss.send(notice(real | {"status": "CANCELED", "cancels": [{"cancelAmount": 5000}]})) == 200
        unchanged()
        assert toss.send({"eventType": "PAYMENT_STATUS_CHANGED"}) == 400
        assert toss.send(notice({"billingKey": "bk"}, event="BILLING_DELETED")) == 200
        unchanged()
        assert [n["body"]["data"]["status"] for n in toss.notices()] == ["DONE"]
        assert toss.deliver(toss.notices()[0]["id"]) == 200  # the genuine notice
    assert ledger_payment(api, payment["id"]).status == "SUCCEEDED"
    assert_both_sides(api, toss, user, "SUCCEEDED", 5000, 0)
    # A refund nobody made, claimed for a real payment: Toss holds no cancel.
    assert toss.send(notice(real | {"status": "PARTIAL_CANCELED", "cancels": [{"cancelAmount": 1000}]})) == 200
    assert_both_sides(api, toss, user, "SUCCEEDED", 5000, 0)

    received = [entry for entry in logs if entry["event"] == "webhook_received"]
    assert [e["outcome"] for e in received] == [
        "MISMATCH", "UNKNOWN_PAYMENT", "MISMATCH", "MISMATCH", "MISMATCH", "IGNORED", "CHANGED"]
    assert order["paymentKey"] not in repr(logs)
    metrics = httpx.get(f"{api.url}/metrics", verify=client_ssl_context()).text
    assert 'subledger_webhook_notifications_total{event_type="PAYMENT_STATUS_CHANGED",outcome="MISMATCH",provider="TOSS"}' in metrics
    assert order["paymentKey"] not in metrics


def test_the_endpoint_has_the_apis_size_and_rate_limits(setup: Any) -> None:
    api, _ = setup(rate_limit_webhook="3/minute", max_body_bytes=10_000)
    url = f"{api.url}/webhooks/toss"
    assert httpx.post(url, content=b"x" * 20_000, verify=client_ssl_context()).status_code == 413  # refused before it is read or counted
    answers = [httpx.post(url, content=body, verify=client_ssl_context()) for body in (b"{not json", b'"a string"', b"{}")]
    assert [a.status_code for a in answers] == [400, 400, 400]
    limited = httpx.post(url, json=notice({"paymentKey": "nope", "status": "DONE"}), verify=client_ssl_context())
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_the_endpoint_is_served_only_with_toss(api: Api) -> None:
    assert httpx.post(f"{api.url}/webhooks/toss", json=notice({"paymentKey": "k", "status": "DONE"}), verify=client_ssl_context()).status_code == 404
