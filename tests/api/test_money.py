"""Money moves exactly once (SPEC §3, §5): races, faults and slow gateways, each driven
through the public API against the sandbox gateway served as its own HTTP server,
which keeps its own record of every charge and refund. Every test checks both
sides to the won — the gateway's record and the ledger — and ends with a clean
reconciliation. Both databases; concurrency with real threads."""
from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from tests.api.conftest import GOOD_CARD, JWT_SECRET, Api
from tests.scenarios.helpers import ADMIN, CANCEL, CHANGE, OUTCOME, UPDATE_METHOD, advance, subscribe
from tests.servers import serve_asgi

PURCHASE = """mutation($p: ID!, $m: ID!, $k: String) { purchasePoints(input: {packageId: $p, paymentMethodId: $m, idempotencyKey: $k}) {
  payment { id orderId amount status } } }"""
REFUND = """mutation($p: ID!, $a: Int, $k: String) { refundPayment(input: {paymentId: $p, amount: $a, reason: "asked", idempotencyKey: $k}) {
  id amount refundedAmount status refunds { id amount status pointsTakenBack failureCode } } }"""
SPEND = "mutation($id: String!) { spendPoints(input: {amount: 500, serviceId: $id}) { pointsSpent } }"
PAYMENTS = "query($u: ID) { payments(userId: $u) { id orderId kind amount refundedAmount status refunds { amount status } } }"
RECONCILE = """{ reconciliation { clean paymentsChecked gatewayOrdersChecked
  disagreements { finding orderId paymentId ledger gateway } } }"""
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, SandboxEngine]]:
    """The sandbox as its own server (one per module), with its own record of money."""
    engine = SandboxEngine()
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # injected dropped answers are not bugs
    with serve_asgi(create_app(engine)) as url:
        yield url, engine


@pytest.fixture
def money_api(api_factory: Any, gateway: tuple[str, SandboxEngine]) -> Api:
    url, engine = gateway
    engine.reset()
    return api_factory(sandbox_url=url, sandbox=engine)


class Gateway:
    """The gateway's side, read over its own HTTP API."""

    def __init__(self, api: Api) -> None:
        self.url = api.built.settings.sandbox_url
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=client_ssl_context())

    def charges(self) -> list[dict[str, Any]]:
        return self.client.get("/sandbox/charges").json()["charges"]

    def refunds(self) -> list[dict[str, Any]]:
        return self.client.get("/sandbox/refunds").json()["refunds"]

    def refunded(self, order_id: str) -> int:
        return sum(r["amount"] for r in self.refunds() if r["orderId"] == order_id)

    def faults(self, **faults: Any) -> None:
        self.client.post("/sandbox/faults", json=faults).raise_for_status()

    def complete(self, order_id: str, status: str) -> None:
        self.client.post(f"/sandbox/orders/{order_id}/complete", json={"status": status}).raise_for_status()

    def cancel_behind_the_ledgers_back(self, payment_key: str, amount: int) -> None:
        auth = base64.b64encode(b"test_sk_someone:").decode()
        self.client.post(
            f"/v1/payments/{payment_key}/cancel", json={"cancelReason": "dashboard", "cancelAmount": amount},
            headers={"Authorization": f"Basic {auth}"},
        ).raise_for_status()


def payments_of(api: Api, user: str) -> list[dict[str, Any]]:
    """The user's payments, newest first (a list query: read once the read models caught up)."""
    api.settle_read_models()
    return api.gql(PAYMENTS, {"u": user}, **ADMIN)["payments"]


def reconcile(api: Api) -> dict[str, Any]:
    return api.gql(RECONCILE, user="audit", scope="auditor")["reconciliation"]


def assert_both_sides_agree(api: Api, user: str) -> None:
    """Every payment of the user: charged and refunded at the gateway exactly as the ledger says."""
    gateway = Gateway(api)
    charged = {c["orderId"]: c["amount"] for c in gateway.charges()}
    payments = payments_of(api, user)
    for payment in payments:
        if payment["status"] in ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED"):
            assert charged.get(payment["orderId"]) == payment["amount"]
        else:
            assert payment["orderId"] not in charged
        assert gateway.refunded(payment["orderId"]) == payment["refundedAmount"]
    report = reconcile(api)
    assert report["clean"], report["disagreements"]
    assert report["paymentsChecked"] >= len(payments) > 0


def in_threads(calls: list[Any]) -> list[Any]:
    """Run each call in its own thread, released together; answers results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # a GraphQL error (it has a code) is an answer; anything else fails below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    unexpected = [r for r in results if isinstance(r, Exception) and not hasattr(r, "code")]
    assert not unexpected, unexpected
    return results


def buy(api: Api, user: str, package: str = "regular", key: str | None = None) -> dict[str, Any]:
    method = api.add_card(user)
    return api.gql(PURCHASE, {"p": package, "m": method, "k": key}, user=user)["purchasePoints"]["payment"]


# ------------------------------------------------------------------ charges still in progress


def test_a_renewal_in_progress_at_the_gateway_stays_pending_and_blocks_a_new_attempt(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    api.gql(OUTCOME, {"m": method, "o": "HOLD_IN_PROGRESS"}, user=user)
    advance(api, timedelta(days=32))  # the renewal run, then the next midnight's settle job
    payments = payments_of(api, user)
    renewal = payments[0]
    assert renewal["status"] == "PENDING"  # IN_PROGRESS at lookup is not a failure
    advance(api, timedelta(days=7))  # dunning dates pass: no second order for that period
    assert [p["orderId"] for p in payments_of(api, user)][0] == renewal["orderId"]
    assert len(payments_of(api, user)) == 2
    gateway.complete(renewal["orderId"], "DONE")
    advance(api, timedelta(days=1))
    payments = payments_of(api, user)
    assert [p["status"] for p in payments] == ["SUCCEEDED", "SUCCEEDED"]
    assert api.gql("query($id: ID!) { subscription(id: $id) { status } }", {"id": sub["id"]}, user=user)[
        "subscription"]["status"] == "ACTIVE"
    assert sorted(c["amount"] for c in gateway.charges()) == [9900, 9900]
    assert_both_sides_agree(api, user)


def test_a_held_charge_that_the_gateway_aborts_fails_once_and_dunning_goes_on(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    api.gql(OUTCOME, {"m": method, "o": "HOLD_IN_PROGRESS"}, user=user)
    advance(api, timedelta(days=31, hours=16))
    held = payments_of(api, user)[0]
    assert held["status"] == "PENDING"
    gateway.complete(held["orderId"], "ABORTED")
    api.gql(OUTCOME, {"m": method, "o": "SUCCEED"}, user=user)
    advance(api, timedelta(days=1))  # settle: FAILED (PAST_DUE); the retry is 3 days after the failure
    assert payments_of(api, user)[0]["status"] == "FAILED"
    advance(api, timedelta(days=4))
    statuses = [p["status"] for p in payments_of(api, user)]
    assert statuses == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert_both_sides_agree(api, user)


# ------------------------------------------------------------------ refunds


def test_concurrent_partial_refunds_never_exceed_the_payment_and_match_the_gateway(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    payment = payments_of(api, user)[0]
    gateway.faults(refundLatencyMs=150)  # the refunds overlap at the gateway
    results = in_threads([
        (lambda k=k: api.gql(REFUND, {"p": payment["id"], "a": 3000, "k": f"r{k}"}, **ADMIN)) for k in range(8)
    ])
    done = [r for r in results if not hasattr(r, "code")]
    refused = [r for r in results if hasattr(r, "code")]
    assert done and all(e.code == "CONFLICT" for e in refused)
    gateway.faults()
    ledger = payments_of(api, user)[0]
    assert ledger["refundedAmount"] == 3000 * len(done) == gateway.refunded(payment["orderId"])
    keys = [r["idempotencyKey"] for r in gateway.refunds()]
    assert len(keys) == len(set(keys)) == len(done)  # each refund its own provider key
    # The rest, one by one, until nothing is left: never more than was paid.
    left = 19900 - ledger["refundedAmount"]
    while left >= 3000:
        api.gql(REFUND, {"p": payment["id"], "a": 3000}, **ADMIN)
        left -= 3000
    assert api.error(REFUND, {"p": payment["id"], "a": 3000}, **ADMIN).code == "BAD_USER_INPUT"
    final = api.gql(REFUND, {"p": payment["id"]}, **ADMIN)["refundPayment"]
    assert (final["status"], final["refundedAmount"]) == ("REFUNDED", 19900)
    assert gateway.refunded(payment["orderId"]) == 19900
    assert api.error(REFUND, {"p": payment["id"]}, **ADMIN).code == "CONFLICT"
    assert_both_sides_agree(api, user)


def test_a_points_refund_racing_spends_refunds_only_the_points_it_took_back(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    payment = buy(api, user)  # 5,000 won for 5,500 points
    gateway.faults(refundLatencyMs=50)
    calls = [lambda: api.gql(REFUND, {"p": payment["id"]}, **ADMIN)["refundPayment"]]
    calls += [(lambda i=i: api.gql(SPEND, {"id": f"svc-{i}"}, user=user)) for i in range(6)]
    results = in_threads(calls)
    refund, spends = results[0], results[1:]
    assert not hasattr(refund, "code"), refund
    spent = 500 * sum(1 for s in spends if not hasattr(s, "code"))
    assert all(s.code == "INSUFFICIENT_POINTS" for s in spends if hasattr(s, "code"))
    taken = refund["refunds"][0]["pointsTakenBack"]
    assert taken + spent == 5500
    money = 5000 * taken // 5500
    assert refund["refundedAmount"] == money == gateway.refunded(payment["orderId"])
    wallet = api.gql("{ wallet { usableBalance totalBalance } }", user=user)["wallet"]
    assert wallet == {"usableBalance": 0, "totalBalance": 0}
    assert_both_sides_agree(api, user)


def test_a_refused_refund_gives_the_points_back_and_a_later_one_goes_through(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    payment = buy(api, user)
    api.gql(SPEND, {"id": "reading-1"}, user=user)  # 5,000 points left
    gateway.faults(refuseRefunds=1)
    error = api.error(REFUND, {"p": payment["id"]}, **ADMIN)
    assert error.code == "CONFLICT"
    assert gateway.refunds() == []
    assert api.gql("{ wallet { usableBalance } }", user=user)["wallet"]["usableBalance"] == 5000
    refunded = api.gql(REFUND, {"p": payment["id"]}, **ADMIN)["refundPayment"]
    assert [r["status"] for r in refunded["refunds"]] == ["FAILED", "SUCCEEDED"]
    assert refunded["refundedAmount"] == 5000 * 5000 // 5500 == gateway.refunded(payment["orderId"])
    assert api.gql("{ wallet { usableBalance } }", user=user)["wallet"]["usableBalance"] == 0
    api.settle_read_models()
    history = api.gql("{ wallet { transactions { items { type amount balanceAfter } } } }", user=user)
    assert [(t["type"], t["amount"]) for t in history["wallet"]["transactions"]["items"][:3]] == [
        ("REFUND", -5000), ("REFUND", 5000), ("REFUND", -5000)]
    assert_both_sides_agree(api, user)


def test_a_lost_refund_answer_is_looked_up_and_never_refunded_twice(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    payment = buy(api, user, "starter")
    gateway.faults(dropRefundResponses=1)
    refunded = api.gql(REFUND, {"p": payment["id"], "k": "once"}, **ADMIN)["refundPayment"]
    assert (refunded["status"], refunded["refundedAmount"]) == ("REFUNDED", 1000)
    again = api.gql(REFUND, {"p": payment["id"], "k": "once"}, **ADMIN)["refundPayment"]
    assert again["refunds"] == refunded["refunds"]
    assert [r["amount"] for r in gateway.refunds()] == [1000]
    assert_both_sides_agree(api, user)


def test_a_refund_whose_outcome_stays_unknown_is_finished_by_the_settle_job(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    payment = buy(api, user, "starter")
    gateway.faults(dropRefundResponses=4, lookupsDown=True)  # the try and its 3 in-call retries
    pending = api.gql(REFUND, {"p": payment["id"]}, **ADMIN)["refundPayment"]
    assert pending["refunds"][0]["status"] == "PENDING" and pending["refundedAmount"] == 0
    assert gateway.refunded(payment["orderId"]) == 1000  # the gateway did it; the ledger cannot know yet
    assert api.gql("{ wallet { usableBalance } }", user=user)["wallet"]["usableBalance"] == 0  # points reserved
    gateway.faults()
    advance(api, timedelta(days=1))
    settled = payments_of(api, user)[0]
    assert (settled["status"], settled["refundedAmount"]) == ("REFUNDED", 1000)
    assert [r["amount"] for r in gateway.refunds()] == [1000]
    assert_both_sides_agree(api, user)


def test_an_idempotency_key_is_bound_to_the_payment_it_refunded(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    first, second = buy(api, user, "starter"), buy(api, user, "starter")
    api.gql(REFUND, {"p": first["id"], "k": "same-key"}, **ADMIN)
    error = api.error(REFUND, {"p": second["id"], "k": "same-key"}, **ADMIN)
    assert error.code == "IDEMPOTENCY_KEY_REUSED"
    assert payments_of(api, user)[0]["refundedAmount"] == 0  # the second, untouched
    assert [r["orderId"] for r in gateway.refunds()] == [first["orderId"]]
    assert_both_sides_agree(api, user)


# ------------------------------------------------------------------ subscriptions' refunds and hard declines


def test_cancel_now_records_its_refund_before_the_gateway_answers(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    advance(api, timedelta(days=10))
    gateway.faults(dropRefundResponses=4, lookupsDown=True)  # the try and its 3 in-call retries
    canceled = api.gql(CANCEL, {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False}}, user=user)["cancelSubscription"]
    assert canceled["status"] == "CANCELED"
    payment = payments_of(api, user)[0]
    assert [r["status"] for r in payment["refunds"]] == ["PENDING"]  # recorded before the answer
    owed = payment["refunds"][0]["amount"]
    assert 0 < owed < 19900 and gateway.refunded(payment["orderId"]) == owed
    gateway.faults()
    advance(api, timedelta(days=1))
    payment = payments_of(api, user)[0]
    assert payment["refundedAmount"] == owed == gateway.refunded(payment["orderId"])
    assert_both_sides_agree(api, user)


def test_a_downgrade_refund_is_recorded_with_the_change_and_settled(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    advance(api, timedelta(days=5))
    changed = api.gql(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "basic", "proration": "IMMEDIATE"}}, user=user)
    assert changed["changePlan"]["plan"]["id"] == "basic"
    payment = payments_of(api, user)[0]
    assert payment["status"] == "PARTIALLY_REFUNDED" and payment["refundedAmount"] > 0
    assert gateway.refunded(payment["orderId"]) == payment["refundedAmount"]
    assert_both_sides_agree(api, user)


def test_a_hard_declined_card_put_back_on_a_past_due_subscription_is_not_charged_again(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    api.gql(OUTCOME, {"m": method, "o": "CARD_SUSPENDED"}, user=user)
    advance(api, timedelta(days=31, hours=16))
    assert api.gql("query($id: ID!) { subscription(id: $id) { status } }", {"id": sub["id"]}, user=user)[
        "subscription"]["status"] == "PAST_DUE"
    orders_before = len(payments_of(api, user))
    api.gql(OUTCOME, {"m": method, "o": "SUCCEED"}, user=user)  # the gateway would take it now: it must not be asked
    error = api.error(UPDATE_METHOD, {"id": sub["id"], "m": method}, user=user)
    assert (error.code, error.extensions["declineCode"]) == ("PAYMENT_FAILED", "CARD_SUSPENDED")
    assert len(gateway.charges()) == 1  # the first period only
    assert len(payments_of(api, user)) == orders_before + 1  # recorded FAILED, not sent
    assert api.gql("query($id: ID!) { subscription(id: $id) { status } }", {"id": sub["id"]}, user=user)[
        "subscription"]["status"] == "PAST_DUE"
    good = api.add_card(user, GOOD_CARD)
    renewed = api.gql(UPDATE_METHOD, {"id": sub["id"], "m": good}, user=user)
    assert renewed["updateSubscriptionPaymentMethod"]["status"] == "ACTIVE"
    assert_both_sides_agree(api, user)


# ------------------------------------------------------------------ reconciliation finds what is wrong


def test_reconciliation_reports_money_moved_behind_the_ledgers_back(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    payment = buy(api, user, "regular")
    assert reconcile(api)["clean"]
    key = api.built.ledger.payment(payment["id"]).payment_key
    gateway.cancel_behind_the_ledgers_back(key, 1000)
    report = reconcile(api)
    assert not report["clean"]
    assert [(d["finding"], d["orderId"]) for d in report["disagreements"]] == [("REFUNDS_DIFFER", payment["orderId"])]
    assert "cancelled 1000" in report["disagreements"][0]["gateway"]


def test_audit_reconcile_exits_1_and_names_an_order_the_ledger_never_saw(
    money_api: Api, user: str, database_url: str
) -> None:
    api, gateway = money_api, Gateway(money_api)
    buy(api, user, "starter")
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET,
           "SUBLEDGER_CLOCK": "test", "SUBLEDGER_SANDBOX_URL": gateway.url}

    def audit() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "subledger.cli", "audit", "reconcile"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    clean = audit()
    assert clean.returncode == 0, clean.stderr
    assert "1 payments and 1 gateway orders checked, 0 disagreement(s)" in clean.stderr
    # A charge made at the gateway behind the ledger's back.
    card = api.built.ledger.customer(user).payment_methods
    method = next(iter(card.values()))
    auth = base64.b64encode(b"test_sk_someone:").decode()
    gateway.client.post(
        f"/v1/billing/{method['billing_key']}", headers={"Authorization": f"Basic {auth}"},
        json={"customerKey": method["customer_key"], "amount": 777, "orderId": "behind-the-back-1", "orderName": "x"},
    ).raise_for_status()
    found = audit()
    assert found.returncode == 1
    assert found.stdout.startswith("UNKNOWN_ORDER provider=SANDBOX order=behind-the-back-1 payment=-")
    assert method["billing_key"] not in found.stdout + found.stderr


def test_every_debit_names_the_lots_that_paid_for_it(money_api: Api, user: str) -> None:
    api = money_api
    payment = buy(api, user, "starter")  # a lot of 1,000 points
    api.gql('mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 300, reason: "gift"}) { id } }', {"u": user}, **ADMIN)
    api.gql("mutation { spendPoints(input: {amount: 1200, serviceId: \"big\"}) { pointsSpent } }", user=user)
    api.settle_read_models()
    history = api.gql("""{ wallet { transactions(first: 5) { items { type amount drawnFrom { lotId amount expiresAt } } } } }""",
                      user=user)["wallet"]["transactions"]["items"]
    spend = history[0]
    assert spend["type"] == "USAGE" and spend["amount"] == -1200
    lot = f"purchase-{payment['id']}"
    # FIFO by expiry: the purchase's lot (expires in a year) first, then the adjustment (no expiry).
    assert [(d["lotId"], d["amount"]) for d in spend["drawnFrom"]] == [(lot, 1000), (spend["drawnFrom"][1]["lotId"], 200)]
    assert spend["drawnFrom"][0]["expiresAt"] is not None and spend["drawnFrom"][1]["expiresAt"] is None
    assert all(t["drawnFrom"] == [] for t in history[1:])  # credits draw on nothing
    assert api.gql("mutation { verifyLedger { mismatches } }", user="audit", scope="auditor")["verifyLedger"]["mismatches"] == []
