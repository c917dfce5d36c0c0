"""A small scripted history, made through the GraphQL API of whichever release serves it, and
the reads that must answer the same after an upgrade (tests/upgrade/make_fixtures.py writes
the history with the previous release; tests/upgrade/test_upgrade.py reads it back with this one)."""
from __future__ import annotations

import os
import signal
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gateways.tls import client_ssl_context
from schema.auth import mint_token

JWT_SECRET = "upgrade-fixture-secret-that-is-long-enough"
CLOCK_START = "2026-03-01T10:00:00+09:00"
USERS = ("alice", "bob")
GOOD_CARD = "test_card_4300000000000001"
POOR_CARD = "test_card_4300000000000002"
#: uvicorn's start line, with the port it bound.
RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def service_env(database_url: str) -> dict[str, str]:
    """The settings both releases serve the fixture with (the test clock is kept in the ledger)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    return {**clean, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET,
            "SUBLEDGER_CLOCK": "test", "SUBLEDGER_CLOCK_START": CLOCK_START, "SUBLEDGER_GATEWAY": "sandbox"}


class Served:
    """`subledger serve` as a process (run from `cwd`, so that directory's code serves), on a port
    the kernel chose (`--port 0`) and read back from uvicorn's start line: a port picked by the
    test could meanwhile be taken by another test's server, which would then answer for it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [*argv, "serve", "--port", "0"], env=env, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.output: list[str] = []
        started = threading.Event()
        found: list[int] = []

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                match = RUNNING.search(line)
                if match and not found:
                    found.append(int(match[1]))
                    started.set()
            started.set()

        threading.Thread(target=read, daemon=True).start()
        if not started.wait(180) or not found:
            self.stop()
            raise AssertionError(f"serve did not start: {''.join(self.output)}")
        self.url = f"http://127.0.0.1:{found[0]}"
        assert httpx.get(f"{self.url}/healthz", timeout=10, verify=client_ssl_context()).status_code == 200

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, user: str = "admin",
            scope: str = "user") -> dict[str, Any]:
        token = mint_token(JWT_SECRET, user, scope)
        body = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                          headers={"Authorization": f"Bearer {token}"}, timeout=120, verify=client_ssl_context()).json()
        if body.get("errors"):
            raise AssertionError(body["errors"])
        return body["data"]

    def settle(self) -> None:
        """Wait until every read model has caught up with the ledger."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = self.gql("{ projections { name lag } }", scope="admin")["projections"]
            if all(row["lag"] == 0 for row in rows):
                return
            time.sleep(0.1)
        raise AssertionError(f"read models did not catch up: {rows}")

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        return "".join(self.output)


def _card(served: Served, user: str, card: str) -> str:
    done = served.gql(
        "mutation($input: RegisterPaymentMethodInput!) { registerPaymentMethod(input: $input) { id } }",
        {"input": {"provider": "SANDBOX", "authKey": card, "customerKey": user}}, user=user)
    return done["registerPaymentMethod"]["id"]


def write_history(served: Served) -> None:
    """Points bought, spent and refused; a subscription charged; a partial refund; a reward."""
    buy = "mutation($input: PurchasePointsInput!) { purchasePoints(input: $input) { payment { id } } }"
    alice_card = _card(served, "alice", GOOD_CARD)
    served.gql(buy, {"input": {"packageId": "regular", "paymentMethodId": alice_card, "idempotencyKey": "a-1"}}, user="alice")
    served.gql('mutation { spendPoints(input: {service: "tarot_three", serviceId: "reading-1"}) { pointsSpent } }', user="alice")
    poor = _card(served, "alice", POOR_CARD)
    try:
        served.gql(buy, {"input": {"packageId": "starter", "paymentMethodId": poor, "idempotencyKey": "a-2"}}, user="alice")
    except AssertionError as refused:  # PAYMENT_FAILED: recorded as a failed payment
        assert "PAYMENT_FAILED" in str(refused), refused
    subscribed = served.gql(
        "mutation($input: SubscribeInput!) { subscribe(input: $input) { id payments { id } } }",
        {"input": {"planId": "basic", "paymentMethodId": alice_card, "skipTrial": True, "idempotencyKey": "a-3"}}, user="alice")
    charge = subscribed["subscribe"]["payments"][0]["id"]
    served.gql("mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { id } }",
               {"input": {"paymentId": charge, "amount": 1000, "reason": "upgrade fixture", "idempotencyKey": "r-1"}},
               scope="admin")
    bob_card = _card(served, "bob", GOOD_CARD)
    served.gql(buy, {"input": {"packageId": "starter", "paymentMethodId": bob_card, "idempotencyKey": "b-1"}}, user="bob")
    served.settle()


def read_back(served: Served) -> dict[str, Any]:
    """What each user's wallet, payments and history answer (read models and ledger both)."""
    served.settle()
    found = {}
    for user in USERS:
        data = served.gql(
            "query($u: ID) { wallet(userId: $u) { usableBalance totalBalance transactions(first: 50) { totalCount"
            " items { type amount balanceAfter } } }"
            " paymentsPage(userId: $u, first: 50) { items { id kind amount status refundedAmount } }"
            " subscriptions(userId: $u) { plan { id } status } }", {"u": user}, scope="admin")
        found[user] = data
    return found


def verify(served: Served) -> dict[str, Any]:
    return served.gql("mutation { verifyLedger { eventsReplayed aggregatesChecked mismatches } }", scope="auditor")["verifyLedger"]


def python_argv() -> list[str]:
    return [sys.executable, "-m", "subledger.cli"]
