"""Receipts (issue 12): the gateway's receipt URL of each charge, recorded on the event
that settles it, projected into the payments read model and served as `receiptUrl`.
Over HTTP on both databases, against the sandbox gateway served as its own server:
every URL is compared with the gateway's own record of the charge and opened there."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from projections.database import ViewDatabase
from subledger.storage import Database
from tests.api import test_money
from tests.api.conftest import POOR_CARD, Api
from tests.api.test_money import Gateway, assert_both_sides_agree
from tests.scenarios.helpers import ADMIN, advance, subscribe

# The module's own sandbox server and an API pointed at it (tests/api/test_money.py).
gateway = test_money.gateway
money_api = test_money.money_api

PURCHASE = """mutation($p: ID!, $m: ID!) { purchasePoints(input: {packageId: $p, paymentMethodId: $m}) {
  payment { id orderId amount status receiptUrl } } }"""
PAYMENTS = "query($u: ID) { payments(userId: $u) { id orderId kind amount status receiptUrl } }"
REBUILD = "mutation($n: String!) { rebuildProjection(name: $n) { name lag } }"
VERIFY = "mutation { verifyLedger { mismatches } }"


def buy(api: Api, user: str, method: str, package: str = "regular") -> dict[str, Any]:
    return api.gql(PURCHASE, {"p": package, "m": method}, user=user)["purchasePoints"]["payment"]


def payments_of(api: Api, user: str) -> list[dict[str, Any]]:
    api.settle_read_models()
    return api.gql(PAYMENTS, {"u": user}, **ADMIN)["payments"]


def read_model_receipts(api: Api, user: str) -> dict[str, str | None]:
    """order id → receipt_url, as the live payments table holds them."""
    queries = api.built.services.payments
    table = queries.table
    with queries.view_db.transaction(readonly=True) as cursor:
        rows = cursor.execute(f"SELECT order_id, receipt_url FROM {table} WHERE user_id = ?", (user,)).fetchall()
    return {row["order_id"]: row["receipt_url"] for row in rows}


def assert_gateway_receipts(gateway: Gateway, payments: list[dict[str, Any]], billing_key: str) -> None:
    """Each succeeded payment shows the receipt URL the gateway keeps for its order (the
    gateway's own record, read over its HTTP API), and that URL serves the receipt."""
    charges = {c["orderId"]: c for c in gateway.charges()}
    for payment in payments:
        charge = charges[payment["orderId"]]
        assert payment["status"] == "SUCCEEDED" and payment["amount"] == charge["amount"]
        assert payment["receiptUrl"] == charge["receiptUrl"]
        assert payment["receiptUrl"] == f"{gateway.url}/receipt/redirection?transactionId={charge['paymentKey']}"
        assert billing_key not in payment["receiptUrl"] and "test_sk_" not in payment["receiptUrl"]
        page = gateway.client.get(payment["receiptUrl"])
        assert page.status_code == 200
        assert payment["orderId"] in page.text and f"{payment['amount']:,}원" in page.text


def test_a_points_purchase_and_renewals_show_the_receipt_the_gateway_reports(money_api: Api, user: str, caplog) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    billing_key = api.built.ledger.customers.payment_method(user, method)["billing_key"]
    bought = buy(api, user, method)
    subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)  # charged at once
    advance(api, timedelta(days=32))  # the renewal run
    payments = payments_of(api, user)
    assert sorted(p["kind"] for p in payments) == ["POINTS", "SUBSCRIPTION", "SUBSCRIPTION"]
    assert_gateway_receipts(gateway, payments, billing_key)
    assert bought["receiptUrl"] == next(p["receiptUrl"] for p in payments if p["id"] == bought["id"])
    assert read_model_receipts(api, user) == {p["orderId"]: p["receiptUrl"] for p in payments}
    assert len({p["receiptUrl"] for p in payments}) == 3
    assert billing_key not in caplog.text
    assert_both_sides_agree(api, user)


def test_a_charge_settled_by_lookup_after_dropped_answers_gets_its_receipt(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    billing_key = api.built.ledger.customers.payment_method(user, method)["billing_key"]
    gateway.faults(dropResponses=4)  # the try and its 3 retries charge, their answers are lost: looked up at once
    looked_up = buy(api, user, method)
    assert looked_up["status"] == "SUCCEEDED" and looked_up["receiptUrl"]
    gateway.faults(dropResponses=4, lookupsDown=True)  # nor can it be looked up: PENDING for the settle job
    pending = buy(api, user, method, "starter")
    assert (pending["status"], pending["receiptUrl"]) == ("PENDING", None)
    gateway.faults()
    advance(api, timedelta(days=1))  # the settle job looks the order up
    payments = payments_of(api, user)
    assert [p["orderId"] for p in payments] == [pending["orderId"], looked_up["orderId"]]
    assert_gateway_receipts(gateway, payments, billing_key)
    assert payments[1]["receiptUrl"] == looked_up["receiptUrl"]
    assert read_model_receipts(api, user) == {p["orderId"]: p["receiptUrl"] for p in payments}
    assert_both_sides_agree(api, user)


def test_a_declined_charge_has_no_receipt(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user, POOR_CARD)
    error = api.error(PURCHASE, {"p": "starter", "m": method}, user=user)
    assert (error.code, error.extensions["declineCode"]) == ("PAYMENT_FAILED", "INSUFFICIENT_FUNDS")
    [payment] = payments_of(api, user)
    assert (payment["id"], payment["status"], payment["receiptUrl"]) == (error.extensions["paymentId"], "FAILED", None)
    assert all(c["orderId"] != payment["orderId"] for c in gateway.charges())
    assert read_model_receipts(api, user) == {payment["orderId"]: None}


def test_receipts_come_back_after_a_rebuild_of_the_payments_read_model(money_api: Api, user: str) -> None:
    api, gateway = money_api, Gateway(money_api)
    method = api.add_card(user)
    billing_key = api.built.ledger.customers.payment_method(user, method)["billing_key"]
    paid = buy(api, user, method)
    declined = api.add_card(user, POOR_CARD)
    api.error(PURCHASE, {"p": "starter", "m": declined}, user=user)
    before = payments_of(api, user)
    live = api.built.services.payments.table
    assert api.gql(REBUILD, {"n": "payments"}, user="analyst-1", scope="analyst")["rebuildProjection"]["lag"] == 0
    deadline = time.monotonic() + 5  # queries see the switch within REFRESH_SECONDS
    while api.built.services.payments.table == live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.built.services.payments.table != live  # the rebuilt set of tables is the live one now
    assert read_model_receipts(api, user) == {p["orderId"]: p["receiptUrl"] for p in before}
    assert payments_of(api, user) == before
    assert [p["receiptUrl"] is None for p in before] == [True, False]
    assert_gateway_receipts(gateway, [p for p in before if p["id"] == paid["id"]], billing_key)
    assert api.gql(VERIFY, user="audit", scope="auditor")["verifyLedger"]["mismatches"] == []


def test_a_database_from_before_receipts_keeps_working(api_factory: Any, database_url: str, user: str) -> None:
    """Events stored before receipts (Payment.Succeeded version 1) still read, as paid
    without a receipt, and a payments table without the column gets it on start."""
    first = api_factory()
    method = first.add_card(user)
    old = buy(first, user, method)
    assert old["receiptUrl"]
    first.settle_read_models()
    first.close()
    make_it_old(database_url)
    api = api_factory()
    new = buy(api, user, method)
    payments = {p["orderId"]: p for p in payments_of(api, user)}
    assert (payments[old["orderId"]]["status"], payments[old["orderId"]]["receiptUrl"]) == ("SUCCEEDED", None)
    charge = next(c for c in api.sandbox.charges() if c["orderId"] == new["orderId"])
    assert payments[new["orderId"]]["receiptUrl"] == new["receiptUrl"] == charge["receiptUrl"]
    assert read_model_receipts(api, user) == {old["orderId"]: None, new["orderId"]: new["receiptUrl"]}
    assert api.gql(VERIFY, user="audit", scope="auditor")["verifyLedger"]["mismatches"] == []


def make_it_old(database_url: str) -> None:
    """Turn the database into one written before receipts: every Payment.Succeeded stored
    as version 1 (no receipt_url, no class_version) and no receipt_url column in payments."""
    database = Database.from_url(database_url)
    events, position = ("stored_events", "rowid") if database.kind == "sqlite" else ("ledger_events", "notification_id")
    view_db = ViewDatabase.open(database, pool_size=1)
    try:
        with view_db.transaction() as cursor:
            rows = cursor.execute(
                f"SELECT {position} AS id, state FROM {events} WHERE topic LIKE ?", ("%Payment.Succeeded",)
            ).fetchall()
            assert rows
            for row in rows:
                state = json.loads(bytes(row["state"]))  # plain JSON: the tests' ledger has no cipher key
                assert state.pop("class_version") == 2 and "receipt_url" in state
                del state["receipt_url"]
                cursor.execute(f"UPDATE {events} SET state = ? WHERE {position} = ?", (json.dumps(state).encode(), row["id"]))
            cursor.execute("ALTER TABLE payments DROP COLUMN receipt_url")
    finally:
        view_db.close()
