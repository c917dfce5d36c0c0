"""The billing scenarios with a NAVER_PAY method: the service over real HTTP (both databases)
against NaverPay's look-alike in a sandbox gateway server over real HTTP. Every money
assertion compares the look-alike's own record with the ledger, to the won."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import Api
from tests.scenarios.helpers import advance, seoul
from tests.scenarios import redirect_provider
from tests.scenarios.redirect_provider import (
    charges_at, last_request_body, lookalike_of,
    BEGIN, PURCHASE, RECONCILE, refund, Lookalike, Scenario, cancel_now_refund, dunning, points_purchase, renewal,
)

# The look-alike server for the module and its control client (fixtures).
lookalike, control = redirect_provider.lookalike, redirect_provider.control

REGISTER = """mutation($t: String!, $c: String!, $r: String) { registerPaymentMethod(input: {provider: NAVER_PAY,
  authKey: $t, customerKey: $c, registrationId: $r}) { id provider cardMasked active } }"""
PAGES = {"approvalUrl": "https://shop.example/naver/return", "cancelUrl": "https://shop.example/naver/no",
         "failUrl": "https://shop.example/naver/fail"}
SECRET = "test_naver_scenario_secret"


def naver_settings(url: str) -> dict[str, str]:
    return {"gateway": "sandbox,naverpay", "naver_base_url": url, "naver_page_url": f"{url}/sandbox/naverpay",
            "naver_partner_id": "np_scenario",
            "naver_client_id": "client-scenario", "naver_client_secret": SECRET, "naver_chain_id": "chain-scenario"}


@pytest.fixture
def api(api_factory: Any, lookalike: str, control: httpx.Client) -> Api:
    return api_factory(**naver_settings(lookalike))


def add_naver(api: Api, control: httpx.Client, user: str) -> str:
    """The registration a front end makes: begin, send the payer to NaverPay, register with the tempReceiptId."""
    began = api.gql(BEGIN, {"i": {"provider": "NAVER_PAY", "customerKey": f"cust-{user}", **PAGES}}, user=user)
    began = began["beginPaymentMethodRegistration"]
    payer = control.get(urlsplit(began["redirectPcUrl"]).path)
    assert payer.status_code == 303
    back = parse_qs(urlsplit(payer.headers["location"]).query)
    assert (back["resultCode"], back["reserveId"]) == (["Success"], [began["registrationId"]])
    method = api.gql(REGISTER, {"t": back["tempReceiptId"][0], "c": f"cust-{user}", "r": began["registrationId"]}, user=user)
    method = method["registerPaymentMethod"]
    assert (method["provider"], method["active"]) == ("NAVER_PAY", True)
    return method["id"]


def naver_charges(control: httpx.Client) -> dict[str, tuple[int, int]]:
    return charges_at(control, "naverpay")


def recurrent_of(control: httpx.Client) -> str:
    return last_request_body(control, "naverpay", "/pay/v3/reserve")["recurrentId"]


def naver(control: httpx.Client) -> Lookalike:
    return lookalike_of(control, "naverpay", lambda: f"/sandbox/naverpay/recurrents/{recurrent_of(control)}/outcome")


@pytest.mark.parametrize("scenario", [renewal, dunning, cancel_now_refund, points_purchase])
def test_money_scenarios(api: Api, control: httpx.Client, user: str, scenario: Scenario) -> None:
    """Renewal, dunning after a decline, cancel-now refund, points purchase (`redirect_provider`)."""
    scenario(api, user, add_naver(api, control, user), naver(control))


def test_a_dropped_charge_answer_is_never_charged_twice_and_is_settled_by_lookup(
    api: Api, control: httpx.Client, user: str
) -> None:
    method = add_naver(api, control, user)
    control.post("/sandbox/faults", json={"dropResponses": 1}).raise_for_status()
    payment = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    order_id = payment["orderId"]
    # The answer was lost; the charge flow looked the order up in NaverPay's history by its
    # order id (merchantPayKey) at once, and found it approved.
    assert (payment["status"], payment["amount"]) == ("SUCCEEDED", 5000)
    assert naver_charges(control) == {order_id: (5000, 0)}
    history = [r for r in control.get("/sandbox/naverpay/requests").json()["requests"] if r["path"].endswith("/v2.3/list/history")]
    assert history, "settled without asking NaverPay"
    advance(api, seoul(2026, 3, 2, 0, 30))  # the settle run has nothing left to do
    assert naver_charges(control) == {order_id: (5000, 0)}  # never charged twice
    approvals = [r for r in control.get("/sandbox/naverpay/requests").json()["requests"] if r["path"].endswith("/pay/v3/approval")]
    assert len(approvals) == 1
    api.settle_read_models()
    report = api.gql(RECONCILE, user="auditor", scope="auditor")["reconciliation"]
    assert (report["clean"], report["paymentsChecked"]) == (True, 1)


def test_a_refund_whose_answer_was_lost_is_made_once(api: Api, control: httpx.Client, user: str) -> None:
    method = add_naver(api, control, user)
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    control.post("/sandbox/faults", json={"dropRefundResponses": 1}).raise_for_status()
    refunded = refund(api, bought["id"], 700)
    assert (refunded["status"], refunded["refundedAmount"]) == ("PARTIALLY_REFUNDED", 700)
    refunds = control.get("/sandbox/naverpay/refunds").json()["refunds"]
    assert [(r["orderId"], r["amount"]) for r in refunds] == [(bought["orderId"], 700)]
    assert naver_charges(control) == {bought["orderId"]: (5000, 700)}


def test_a_cancel_naverpay_completes_itself_is_refunded_once_and_reconciles(
    api: Api, control: httpx.Client, user: str
) -> None:
    method = add_naver(api, control, user)
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    control.post("/sandbox/naverpay/cancels-later", json={"count": 1}).raise_for_status()
    refunded = refund(api, bought["id"], 700)
    assert (refunded["status"], refunded["refundedAmount"]) == ("PARTIALLY_REFUNDED", 700)
    assert naver_charges(control) == {bought["orderId"]: (5000, 0)}  # answered CancelNotComplete: not done yet
    control.post("/sandbox/naverpay/complete-cancels").raise_for_status()
    advance(api, seoul(2026, 3, 2, 0, 30))  # the settle run sends nothing again
    assert naver_charges(control) == {bought["orderId"]: (5000, 700)}
    cancels = [r for r in control.get("/sandbox/naverpay/requests").json()["requests"] if r["path"].endswith("/v1/cancel")]
    assert len(cancels) == 1
    api.settle_read_models()
    report = api.gql(RECONCILE, user="auditor", scope="auditor")["reconciliation"]
    assert (report["clean"], report["paymentsChecked"]) == (True, 1)


def test_naverpay_not_configured_is_refused_naming_it(api_factory: Any, user: str) -> None:
    plain = api_factory()  # SUBLEDGER_GATEWAY=sandbox only
    began = plain.error(BEGIN, {"i": {"provider": "NAVER_PAY", "customerKey": "c", **PAGES}}, user=user)
    assert began.code == "BAD_USER_INPUT" and "NAVER_PAY is not enabled" in began.errors[0]["message"]
    registered = plain.error(REGISTER, {"t": "TP1", "c": "c", "r": "reserve-1"}, user=user)
    assert registered.code == "BAD_USER_INPUT" and "NAVER_PAY is not enabled" in registered.errors[0]["message"]
    assert plain.gql("query { paymentMethods { id } }", user=user)["paymentMethods"] == []


def test_a_wrong_temp_receipt_registers_nothing(api: Api, control: httpx.Client, user: str) -> None:
    began = api.gql(BEGIN, {"i": {"provider": "NAVER_PAY", "customerKey": f"cust-{user}", **PAGES}}, user=user)
    control.get(urlsplit(began["beginPaymentMethodRegistration"]["redirectPcUrl"]).path)
    wrong = api.error(REGISTER, {"t": "TPNOTTHEONE", "c": f"cust-{user}",
                                 "r": began["beginPaymentMethodRegistration"]["registrationId"]}, user=user)
    assert (wrong.code, wrong.extensions.get("providerCode")) == ("BAD_USER_INPUT", "Fail")
    assert api.gql("query { paymentMethods { id } }", user=user)["paymentMethods"] == []


def test_naverpay_calls_are_traced_by_operation_without_secrets(api_factory: Any, lookalike: str, control: httpx.Client,
                                                                user: str) -> None:
    from tests.otlp_receiver import running_receiver

    with running_receiver() as receiver:
        api = api_factory(**naver_settings(lookalike), otlp_endpoint=receiver.url, otlp_service_name="subledger-naver")
        method = add_naver(api, control, user)
        bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
        assert naver_charges(control) == {bought["orderId"]: (5000, 0)}
        recurrent = recurrent_of(control)
        api.close()  # flushes the spans
        calls = [s for s in receiver.spans() if s["name"] == "gateway.call"]
        assert [(c["attributes"]["subledger.gateway.provider"], c["attributes"]["subledger.gateway.operation"],
                 c["attributes"]["http.response.status_code"]) for c in calls] == [
            ("NAVER_PAY", "regist_reserve", 200), ("NAVER_PAY", "regist_approval", 200),
            ("NAVER_PAY", "pay_reserve", 200), ("NAVER_PAY", "charge", 200)]
        exported = receiver.raw()
        for secret in (recurrent, SECRET):
            assert secret.encode() not in exported, secret
