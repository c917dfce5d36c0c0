"""The billing scenarios with a KAKAO_PAY method: the service over real HTTP (both databases)
against KakaoPay's look-alike in a sandbox gateway server over real HTTP. Every money
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

REGISTER = """mutation($t: String!, $c: String!, $r: String) { registerPaymentMethod(input: {provider: KAKAO_PAY,
  authKey: $t, customerKey: $c, registrationId: $r}) { id provider cardMasked active } }"""
SETTLE = """mutation($p: ID!, $k: String!) { settlePaymentFromProvider(paymentId: $p, providerPaymentKey: $k) {
  id status amount orderId } }"""
PAGES = {"approvalUrl": "https://shop.example/kakao/ok", "cancelUrl": "https://shop.example/kakao/no",
         "failUrl": "https://shop.example/kakao/fail"}


@pytest.fixture
def api(api_factory: Any, lookalike: str, control: httpx.Client) -> Api:
    return api_factory(gateway="sandbox,kakaopay", kakao_base_url=lookalike, kakao_secret_key="DEVSCENARIOKEY")


def add_kakao(api: Api, control: httpx.Client, user: str) -> str:
    """The registration a front end makes: begin, send the payer to KakaoPay, register with the pg_token."""
    began = api.gql(BEGIN, {"i": {"provider": "KAKAO_PAY", "customerKey": f"cust-{user}", **PAGES}}, user=user)
    began = began["beginPaymentMethodRegistration"]
    payer = control.get(urlsplit(began["redirectPcUrl"]).path)
    assert payer.status_code == 303
    token = parse_qs(urlsplit(payer.headers["location"]).query)["pg_token"][0]
    method = api.gql(REGISTER, {"t": token, "c": f"cust-{user}", "r": began["registrationId"]}, user=user)
    method = method["registerPaymentMethod"]
    assert (method["provider"], method["active"]) == ("KAKAO_PAY", True)
    return method["id"]


def kakao_charges(control: httpx.Client) -> dict[str, tuple[int, int]]:
    return charges_at(control, "kakaopay")


def sid_of(control: httpx.Client) -> str:
    return last_request_body(control, "kakaopay", "/subscription")["sid"]


def kakao(control: httpx.Client) -> Lookalike:
    return lookalike_of(control, "kakaopay", lambda: f"/sandbox/kakaopay/sids/{sid_of(control)}/outcome")


@pytest.mark.parametrize("scenario", [renewal, dunning, cancel_now_refund, points_purchase])
def test_money_scenarios(api: Api, control: httpx.Client, user: str, scenario: Scenario) -> None:
    """Renewal, dunning after a decline, cancel-now refund, points purchase (`redirect_provider`)."""
    scenario(api, user, add_kakao(api, control, user), kakao(control))


def test_a_dropped_charge_answer_is_never_charged_twice_and_is_settled_by_lookup_with_its_tid(
    api: Api, control: httpx.Client, user: str
) -> None:
    """KakaoPay finds orders by tid only, and the tid was in the lost answer: the payment
    stays PENDING (never sent again), reconciliation names it (LOOKUP_FAILED), and a person
    settles it by lookup with the tid from KakaoPay's records (settlePaymentFromProvider)."""
    method = add_kakao(api, control, user)
    control.post("/sandbox/faults", json={"dropResponses": 1}).raise_for_status()
    payment = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    charges = kakao_charges(control)
    order_id = payment["orderId"]
    assert charges == {order_id: (5000, 0)} and payment["status"] == "PENDING"
    advance(api, seoul(2026, 3, 2, 0, 30))  # the settle run looks it up: impossible without the tid
    assert kakao_charges(control) == charges  # never sent again
    sent = [r for r in control.get("/sandbox/kakaopay/requests").json()["requests"] if r["path"].endswith("/subscription")]
    assert [r["body"]["partner_order_id"] for r in sent] == [order_id]
    api.settle_read_models()
    report = api.gql(RECONCILE, user="auditor", scope="auditor")["reconciliation"]
    assert [(d["finding"], d["provider"], d["orderId"]) for d in report["disagreements"]] == [
        ("LOOKUP_FAILED", "KAKAO_PAY", order_id)
    ]
    assert "tid" in report["disagreements"][0]["gateway"]

    # A person finds the tid in KakaoPay's records by the order id, and settles the payment with it.
    tid = control.get("/sandbox/kakaopay/charges").json()["charges"][0]["tid"]
    wrong = api.error(SETTLE, {"p": payment["id"], "k": "T0000000000000000000"}, user="ops", scope="admin")
    assert wrong.code == "BAD_USER_INPUT"
    settled = api.gql(SETTLE, {"p": payment["id"], "k": tid}, user="ops", scope="admin")["settlePaymentFromProvider"]
    assert (settled["status"], settled["amount"], settled["orderId"]) == ("SUCCEEDED", 5000, order_id)
    assert kakao_charges(control) == {order_id: (5000, 0)}  # settling charged nothing
    again = api.error(SETTLE, {"p": payment["id"], "k": tid}, user="ops", scope="admin")
    assert again.code == "CONFLICT"
    api.settle_read_models()
    assert api.gql(RECONCILE, user="auditor", scope="auditor")["reconciliation"]["clean"] is True


def test_a_refund_after_reconcile_is_clean_on_both_sides(api: Api, control: httpx.Client, user: str) -> None:
    method = add_kakao(api, control, user)
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    refunded = refund(api, bought["id"], 1200)
    assert refunded["refundedAmount"] == 1200
    assert kakao_charges(control) == {bought["orderId"]: (5000, 1200)}
    api.settle_read_models()
    report = api.gql(RECONCILE, user="auditor", scope="auditor")["reconciliation"]
    assert (report["clean"], report["paymentsChecked"]) == (True, 1)


def test_a_refund_whose_answer_was_lost_is_settled_by_lookup_with_the_tid(api: Api, control: httpx.Client, user: str) -> None:
    method = add_kakao(api, control, user)
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
    control.post("/sandbox/faults", json={"dropRefundResponses": 1}).raise_for_status()
    refunded = refund(api, bought["id"], 700)
    assert (refunded["status"], refunded["refundedAmount"]) == ("PARTIALLY_REFUNDED", 700)
    refunds = control.get("/sandbox/kakaopay/refunds").json()["refunds"]
    assert [(r["orderId"], r["amount"]) for r in refunds] == [(bought["orderId"], 700)]  # made once, never re-sent
    assert kakao_charges(control) == {bought["orderId"]: (5000, 700)}


def test_kakaopay_not_configured_or_misused_is_refused_naming_it(api_factory: Any, user: str) -> None:
    plain = api_factory()  # SUBLEDGER_GATEWAY=sandbox only
    began = plain.error(BEGIN, {"i": {"provider": "KAKAO_PAY", "customerKey": "c", **PAGES}}, user=user)
    assert began.code == "BAD_USER_INPUT" and "KAKAO_PAY is not enabled" in began.errors[0]["message"]
    registered = plain.error(REGISTER, {"t": "tok", "c": "c", "r": "reg-1.T1"}, user=user)
    assert registered.code == "BAD_USER_INPUT" and "KAKAO_PAY is not enabled" in registered.errors[0]["message"]
    sandbox = plain.error(BEGIN, {"i": {"provider": "SANDBOX", "customerKey": "c", **PAGES}}, user=user)
    assert sandbox.code == "BAD_USER_INPUT" and "needs no redirect" in sandbox.errors[0]["message"]
    assert plain.gql("query { paymentMethods { id } }", user=user)["paymentMethods"] == []


def test_kakaopay_registration_needs_its_id_and_good_urls(api: Api, control: httpx.Client, user: str) -> None:
    missing = api.error(REGISTER, {"t": "tok", "c": f"cust-{user}", "r": None}, user=user)
    assert missing.code == "BAD_USER_INPUT" and "registrationId" in missing.errors[0]["message"]
    bad_url = api.error(BEGIN, {"i": {"provider": "KAKAO_PAY", "customerKey": "c", **PAGES, "failUrl": "javascript:x"}}, user=user)
    assert bad_url.code == "BAD_USER_INPUT"
    began = api.gql(BEGIN, {"i": {"provider": "KAKAO_PAY", "customerKey": f"cust-{user}", **PAGES}}, user=user)
    wrong = api.error(REGISTER, {"t": "not-the-pg-token", "c": f"cust-{user}",
                                 "r": began["beginPaymentMethodRegistration"]["registrationId"]}, user=user)
    assert (wrong.code, wrong.extensions.get("providerCode")) == ("BAD_USER_INPUT", "-701")
    assert api.gql("query { paymentMethods { id } }", user=user)["paymentMethods"] == []


def test_kakaopay_calls_are_traced_by_operation_without_keys(api_factory: Any, lookalike: str, control: httpx.Client,
                                                             user: str) -> None:
    from tests.otlp_receiver import running_receiver

    with running_receiver() as receiver:
        api = api_factory(gateway="sandbox,kakaopay", kakao_base_url=lookalike, kakao_secret_key="DEVTRACEDSECRETKEY",
                          otlp_endpoint=receiver.url, otlp_service_name="subledger-kakao")
        method = add_kakao(api, control, user)
        bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]["payment"]
        assert kakao_charges(control) == {bought["orderId"]: (5000, 0)}
        sid = sid_of(control)
        api.close()  # flushes the spans
        calls = [s for s in receiver.spans() if s["name"] == "gateway.call"]
        assert [(c["attributes"]["subledger.gateway.provider"], c["attributes"]["subledger.gateway.operation"],
                 c["attributes"]["http.response.status_code"]) for c in calls] == [
            ("KAKAO_PAY", "ready", 200), ("KAKAO_PAY", "approve", 200), ("KAKAO_PAY", "charge", 200)]
        exported = receiver.raw()
        for secret in (sid, "DEVTRACEDSECRETKEY", "SECRET_KEY"):
            assert secret.encode() not in exported, secret
