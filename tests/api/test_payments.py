"""Payment methods, sandbox outcomes, points refunds and restarts (SPEC §4, §5)."""
from __future__ import annotations

import asyncio

from tests.api.conftest import Api

PURCHASE = """mutation($p: ID!, $m: ID!) { purchasePoints(input: {packageId: $p, paymentMethodId: $m}) {
  payment { id status orderId } totalPoints } }"""
SPEND = 'mutation($a: Int!, $id: String!) { spendPoints(input: {amount: $a, serviceId: $id}) { remainingBalance } }'
REFUND = """mutation($p: ID!, $a: Int, $k: String) { refundPayment(input: {paymentId: $p, amount: $a, reason: "customer asked", idempotencyKey: $k}) {
  id status amount refundedAmount } }"""
OUTCOME = "mutation($m: ID!, $o: SandboxOutcome!) { setSandboxOutcome(paymentMethodId: $m, outcome: $o) { id } }"
WALLET = "{ wallet { usableBalance totalBalance lifetimeEarned version } }"


def buy(api: Api, user: str, method: str, package: str = "regular") -> dict:
    return api.gql(PURCHASE, {"p": package, "m": method}, user=user)["purchasePoints"]


def test_refund_of_a_points_purchase_returns_the_unspent_share(api: Api, user: str) -> None:
    method = api.add_card(user)
    payment = buy(api, user, method)["payment"]  # 5,000 won for 5,500 points
    api.gql(SPEND, {"a": 1100, "id": "reading-1"}, user=user)  # 4,400 points left in the lot
    admin = {"user": "ops", "scope": "admin"}
    refunded = api.gql(REFUND, {"p": payment["id"], "k": "refund-1"}, **admin)["refundPayment"]
    # floor(5000 × 4400 / 5500) = 4000 won back; the lot's 4,400 points are taken back.
    assert (refunded["status"], refunded["refundedAmount"]) == ("PARTIALLY_REFUNDED", 4000)
    wallet = api.gql(WALLET, user=user)["wallet"]
    assert (wallet["usableBalance"], wallet["totalBalance"]) == (0, 0)
    again = api.gql(REFUND, {"p": payment["id"], "k": "refund-1"}, **admin)["refundPayment"]
    assert again["refundedAmount"] == 4000
    # Nothing is left to refund: the lot is empty.
    assert api.error(REFUND, {"p": payment["id"]}, **admin).code == "CONFLICT"
    gateway_payment = api.sandbox.charges()
    assert [c["orderId"] for c in gateway_payment] == [payment["orderId"]]


def test_refund_is_admin_only_and_checks_the_amount(api: Api, user: str) -> None:
    method = api.add_card(user)
    payment = buy(api, user, method, "starter")["payment"]
    assert api.error(REFUND, {"p": payment["id"]}, user=user).code == "FORBIDDEN"
    admin = {"user": "ops", "scope": "admin"}
    assert api.error(REFUND, {"p": payment["id"], "a": 1001}, **admin).code == "BAD_USER_INPUT"
    assert api.error(REFUND, {"p": payment["id"], "a": -1}, **admin).code == "BAD_USER_INPUT"
    assert api.error(REFUND, {"p": "not-a-payment"}, **admin).code == "NOT_FOUND"
    assert api.gql(WALLET, user=user)["wallet"]["usableBalance"] == 1000
    full = api.gql(REFUND, {"p": payment["id"]}, **admin)["refundPayment"]
    assert (full["status"], full["refundedAmount"]) == ("REFUNDED", 1000)


def test_sandbox_outcome_changes_later_charges(api: Api, user: str) -> None:
    method = api.add_card(user)
    api.gql(OUTCOME, {"m": method, "o": "CARD_SUSPENDED"}, user=user)
    error = api.error(PURCHASE, {"p": "starter", "m": method}, user=user)
    assert (error.code, error.extensions["declineCode"]) == ("PAYMENT_FAILED", "CARD_SUSPENDED")
    # A hard decline is remembered on the method: the next charge fails without reaching the gateway.
    api.gql(OUTCOME, {"m": method, "o": "SUCCEED"}, user=user)
    again = api.error(PURCHASE, {"p": "starter", "m": method}, user=user)
    assert (again.code, again.extensions["declineCode"]) == ("PAYMENT_FAILED", "CARD_SUSPENDED")
    second_order = api.built.ledger.payment(again.extensions["paymentId"]).order_id
    assert asyncio.run(api.sandbox.lookup_order(second_order)).status == 404
    assert api.sandbox.charges() == []
    method = api.add_card(user)
    api.gql(OUTCOME, {"m": method, "o": "SERVER_ERROR_ONCE"}, user=user)
    bought = buy(api, user, method, "starter")
    assert bought["payment"]["status"] == "SUCCEEDED"  # retried in the call under the same key
    assert len([c for c in api.sandbox.charges() if c["orderId"] == bought["payment"]["orderId"]]) == 1


def test_removed_payment_method_cannot_be_charged(api: Api, user: str) -> None:
    method = api.add_card(user)
    removed = api.gql("mutation($m: ID!) { removePaymentMethod(id: $m) { id active } }", {"m": method}, user=user)
    assert removed["removePaymentMethod"]["active"] is False
    assert api.error(PURCHASE, {"p": "starter", "m": method}, user=user).code == "NOT_FOUND"
    assert api.gql(WALLET, user=user)["wallet"]["version"] == 0


def test_a_restart_keeps_the_test_clock_the_ledger_and_the_read_models(api_factory, user: str) -> None:
    first = api_factory()
    first.gql('mutation { advanceTestClock(to: "2026-07-01T12:00:00+09:00") { job } }', user="ops", scope="admin")
    first.gql('mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 77, reason: "r"}) { id } }', {"u": user}, user="ops", scope="admin")
    first.settle_read_models()
    first.close()
    second = api_factory()
    assert second.gql("{ clock { now } }")["clock"]["now"] == "2026-07-01T03:00:00Z"
    assert second.gql(WALLET, user=user)["wallet"]["usableBalance"] == 77
    second.settle_read_models()
    history = second.gql("{ wallet { transactions { totalCount } } }", user=user)
    assert history["wallet"]["transactions"]["totalCount"] == 1
