"""The money scenarios every redirect-registered provider (KAKAO_PAY, NAVER_PAY) must pass,
written once: each takes the provider's look-alike as a `Lookalike` (its own record of charges
and refunds, and how to make its next charge decline) and asserts on both sides, to the won."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api
from tests.integration.gateway_server import serve_sandbox, sandbox_control
from tests.scenarios.helpers import CANCEL, advance, at, exact_share, seoul, subscribe, subscription

BEGIN = """mutation($i: BeginPaymentMethodRegistrationInput!) { beginPaymentMethodRegistration(input: $i) {
  registrationId redirectPcUrl redirectMobileUrl redirectAppUrl } }"""
RECONCILE = """{ reconciliation { clean paymentsChecked disagreements { finding provider orderId gateway } } }"""
REFUND = """mutation($i: RefundPaymentInput!) { refundPayment(input: $i) { status refundedAmount orderId } }"""


def refund(api: Any, payment_id: str, amount: int) -> dict:
    """An operator's partial refund of `amount` won: refundPayment's answer."""
    answer = api.gql(REFUND, {"i": {"paymentId": payment_id, "amount": amount, "reason": "asked"}}, user="ops", scope="admin")
    return answer["refundPayment"]


PURCHASE = """mutation($p: ID!, $m: ID!) { purchasePoints(input: {packageId: $p, paymentMethodId: $m}) {
  payment { id status amount orderId failureCode } totalPoints } }"""


@dataclass(frozen=True)
class Lookalike:
    #: orderId → (amount charged, amount given back), as the look-alike holds them.
    charges: Callable[[], dict[str, tuple[int, int]]]
    #: [(orderId, amount)] of the refunds it made, in order.
    refunds: Callable[[], list[tuple[str, int]]]
    #: How the next charges of the last-used billing key end (a SandboxOutcome name).
    set_outcome: Callable[[str], None]


@pytest.fixture(scope="module")
def lookalike() -> Iterator[str]:
    """A sandbox gateway server (every provider's look-alike) for the module."""
    with serve_sandbox() as url:
        yield url


@pytest.fixture
def control(lookalike: str) -> Iterator[httpx.Client]:
    with sandbox_control(lookalike) as client:
        yield client


def charges_at(control: httpx.Client, provider: str) -> dict[str, tuple[int, int]]:
    """orderId → (amount charged, amount given back) as the look-alike of `provider` (kakaopay,
    naverpay) holds them."""
    listed = control.get(f"/sandbox/{provider}/charges").json()["charges"]
    return {c["orderId"]: (c["amount"], c["canceled"]) for c in listed}


def last_request_body(control: httpx.Client, provider: str, path_suffix: str) -> dict:
    """The body of the last request the look-alike of `provider` received on a path ending so."""
    requests = control.get(f"/sandbox/{provider}/requests").json()["requests"]
    return [r for r in requests if r["path"].endswith(path_suffix)][-1]["body"]


def lookalike_of(control: httpx.Client, provider: str, outcome_path: Callable[[], str]) -> Lookalike:
    """The `Lookalike` of `provider`; `outcome_path()` names the control path that sets the
    outcome of the last-used billing key."""
    def set_outcome(outcome: str) -> None:
        control.post(outcome_path(), json={"outcome": outcome}).raise_for_status()

    def refunds() -> list[tuple[str, int]]:
        return [(r["orderId"], r["amount"]) for r in control.get(f"/sandbox/{provider}/refunds").json()["refunds"]]

    return Lookalike(lambda: charges_at(control, provider), refunds, set_outcome)


#: A scenario: (api, user, the provider's payment method id, its look-alike).
Scenario = Callable[[Api, str, str, Lookalike], None]


def ledger_money(payments: list[dict]) -> dict[str, tuple[int, int]]:
    paid = ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED")
    return {p["orderId"]: (p["amount"], p["refundedAmount"]) for p in payments if p["status"] in paid}


def renewal(api: Api, user: str, method: str, provider: Lookalike) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    advance(api, seoul(2026, 4, 1, 10, 30))
    sub = subscription(api, user, sub["id"])
    assert [(p["status"], p["amount"]) for p in sub["payments"]] == [("SUCCEEDED", 9900), ("SUCCEEDED", 9900)]
    assert provider.charges() == ledger_money(sub["payments"])
    assert sum(a for a, _ in provider.charges().values()) == 19800


def dunning(api: Api, user: str, method: str, provider: Lookalike) -> None:
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    provider.set_outcome("INSUFFICIENT_FUNDS")
    advance(api, seoul(2026, 4, 1, 0, 30))
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"]) == ("PAST_DUE", 1)
    assert [(p["status"], p["failureCode"]) for p in sub["payments"]][1:] == [("FAILED", "INSUFFICIENT_FUNDS")]
    provider.set_outcome("SUCCEED")
    advance(api, seoul(2026, 4, 4, 0, 30))  # the dunning retry
    sub = subscription(api, user, sub["id"])
    assert (sub["status"], sub["consecutiveFailures"]) == ("ACTIVE", 0)
    assert provider.charges() == ledger_money(sub["payments"])
    assert sorted(a for a, _ in provider.charges().values()) == [9900, 9900]


def cancel_now_refund(api: Api, user: str, method: str, provider: Lookalike) -> None:
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True)
    when = seoul(2026, 3, 17, 14, 22)
    advance(api, when)
    start, end = at(sub["currentPeriodStart"]), at(sub["currentPeriodEnd"])
    expected = exact_share(19900, end - when, end - start)
    sub = api.gql(CANCEL, {"i": {"subscriptionId": sub["id"], "atPeriodEnd": False}}, user=user)["cancelSubscription"]
    payment = sub["payments"][0]
    assert (payment["status"], payment["refundedAmount"]) == ("PARTIALLY_REFUNDED", expected)
    assert provider.charges() == {payment["orderId"]: (19900, expected)} == ledger_money(sub["payments"])
    assert provider.refunds() == [(payment["orderId"], expected)]


def points_purchase(api: Api, user: str, method: str, provider: Lookalike) -> None:
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]
    assert (bought["payment"]["status"], bought["payment"]["amount"], bought["totalPoints"]) == ("SUCCEEDED", 5000, 5500)
    assert provider.charges() == {bought["payment"]["orderId"]: (5000, 0)}
