"""A GraphQL caller over HTTP that never raises: every call is an `Answer` with its HTTP
status, data and error code, so load generators and fault tests can count outcomes."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.deployment import JWT_SECRET
from gateways.tls import client_ssl_context
from schema.auth import mint_token

#: What an answer's code is when there is none: the transport failed, or the body was no GraphQL answer.
TRANSPORT = "TRANSPORT_ERROR"
NO_CODE = "NO_CODE"


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; 0 when no response came
    data: dict[str, Any] | None
    code: str | None  # the first error's extensions.code; None on success
    message: str
    seconds: float
    body: str

    @property
    def ok(self) -> bool:
        return self.code is None


def token(user: str, scope: str = "user") -> str:
    return mint_token(JWT_SECRET, user, scope, ttl_seconds=7 * 86400)


class GraphQL:
    def __init__(self, url: str, timeout: float = 60) -> None:
        self.url = url.rstrip("/") + "/graphql"
        self.client = httpx.Client(timeout=timeout, verify=client_ssl_context())
        self.tokens: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        self.client.close()

    def call(self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = None,
             scope: str = "user") -> Answer:
        headers = {}
        if user:
            key = (user, scope)
            if key not in self.tokens:
                self.tokens[key] = token(user, scope)
            headers["Authorization"] = f"Bearer {self.tokens[key]}"
        began = time.perf_counter()
        try:
            response = self.client.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers)
        except httpx.HTTPError as error:
            return Answer(0, None, TRANSPORT, type(error).__name__, time.perf_counter() - began, "")
        seconds = time.perf_counter() - began
        try:
            body = response.json()
        except ValueError:
            return Answer(response.status_code, None, NO_CODE, "not JSON", seconds, response.text[:500])
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first = errors[0]
            code = (first.get("extensions") or {}).get("code") or NO_CODE
            return Answer(response.status_code, body.get("data"), code, str(first.get("message")), seconds, response.text)
        if response.status_code != 200 or not isinstance(body, dict) or body.get("data") is None:
            return Answer(response.status_code, None, NO_CODE, "no data", seconds, response.text[:500])
        return Answer(response.status_code, body["data"], None, "", seconds, response.text)


# The operations the soak and the fault tests drive.
REGISTER = ("mutation($k: String!, $c: String!) { registerPaymentMethod(input: {provider: SANDBOX, authKey: $k,"
            " customerKey: $c}) { id } }")
PURCHASE = ("mutation($p: ID!, $m: ID!, $k: String) { purchasePoints(input: {packageId: $p, paymentMethodId: $m,"
            " idempotencyKey: $k}) { payment { id orderId amount status } } }")
SPEND = ("mutation($a: Int!, $s: String!) { spendPoints(input: {amount: $a, serviceId: $s})"
         " { pointsSpent remainingBalance } }")
SUBSCRIBE = ("mutation($p: ID!, $m: ID, $t: Boolean!) { subscribe(input: {planId: $p, paymentMethodId: $m,"
             " skipTrial: $t}) { id status } }")
CHANGE = "mutation($s: ID!, $p: ID!) { changePlan(input: {subscriptionId: $s, planId: $p}) { id status } }"
CANCEL = "mutation($s: ID!) { cancelSubscription(input: {subscriptionId: $s, atPeriodEnd: false}) { id status } }"
REFUND = ("mutation($p: ID!, $a: Int, $k: String) { refundPayment(input: {paymentId: $p, amount: $a, reason: \"soak\","
          " idempotencyKey: $k}) { id status refundedAmount } }")
ADVANCE = "mutation($to: DateTime!) { advanceTestClock(to: $to) { job } }"
NOW = "{ clock { now } }"
WALLET = "query($u: ID) { wallet(userId: $u) { totalBalance usableBalance pendingBalance } }"
PAYMENTS = "query($u: ID) { payments(userId: $u, first: 100) { id orderId kind amount refundedAmount status } }"
SUBSCRIPTIONS = "query($u: ID) { subscriptions(userId: $u) { id status payments { orderId status failureCode createdAt } } }"
RECONCILE = "{ reconciliation { clean paymentsChecked disagreements { finding orderId paymentId ledger gateway } } }"
GOOD_CARD = "test_card_4300000000000001"
