"""Fault tests: the service as real processes (`subledger serve`, `subledger worker`, the sandbox
gateway server) on servers the test may restart or kill (benchmarks/deployment.py).

Every test ends with `check_books`: `audit verify` clean, `audit reconcile` clean (the
ledger against the gateway's own record, to the won), no negative balance, and every
subscription period charged at most once at the gateway."""
from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from benchmarks import gql_client as q
from benchmarks.deployment import (
    CLOCK_START,
    JWT_SECRET,
    Deployment,
    Postgres,
    Redis,
    make_workdir,
    service_env,
    wait_until,
)
from benchmarks.gql_client import Answer, GraphQL
from benchmarks.soak import period_counts
from gateways.tls import client_ssl_context
from subledger.app import Built, build
from subledger.settings import Settings

#: Every code the contract lets an answer carry (SPEC "Error codes"), plus the rate limit's.
CONTRACT_CODES = {
    "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT", "INSUFFICIENT_POINTS",
    "USAGE_LIMIT_EXCEEDED", "PAYMENT_FAILED", "ALREADY_CLAIMED", "IDEMPOTENCY_KEY_REUSED", "PROMO_CODE_INVALID",
    "SANDBOX_ONLY", "INTERNAL", "RATE_LIMITED",
}
#: What must never reach a client: traces, SQL, driver names, connection strings.
LEAKS = re.compile(r"Traceback|File \"|psycopg|OperationalError|SELECT |INSERT |UPDATE |postgresql://|redis://", re.I)


@pytest.fixture
def workdir() -> Iterator[Any]:
    path = make_workdir("subledger-faults.")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def own_postgres(workdir: Any) -> Iterator[Postgres]:
    """A PostgreSQL server of this test's own, so it can be restarted."""
    server = Postgres(workdir).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(workdir: Any) -> Iterator[Redis]:
    server = Redis(workdir).start()
    yield server
    server.stop()


@pytest.fixture
def shared_postgres(postgres_url: str) -> str:
    return postgres_url


def make_deployment(workdir: Any, database_url: str, redis_url: str | None = None) -> Deployment:
    return Deployment(workdir, service_env(database_url, redis_url=redis_url))


@pytest.fixture
def deploy(workdir: Any) -> Iterator[Any]:
    """deploy(database_url, redis_url=None) → a Deployment whose processes stop after the test."""
    made: list[Deployment] = []

    def start(database_url: str, redis_url: str | None = None) -> Deployment:
        deployment = make_deployment(workdir, database_url, redis_url)
        made.append(deployment)
        return deployment

    yield start
    for deployment in made:
        deployment.stop()


def with_sandbox(deployment: Deployment) -> str:
    """Start the sandbox gateway server; every later process of the deployment charges through it."""
    sandbox = deployment.sandbox()
    deployment.env["SUBLEDGER_SANDBOX_URL"] = sandbox.url
    return sandbox.url


def set_clock(database_url: str, when: datetime) -> None:
    """Move the shared test clock from this process without running any job here
    (the workers run what is due, as in production)."""
    built: Built = build(Settings(database_url=database_url, jwt_secret=JWT_SECRET, clock="test",
                                  clock_start=datetime.fromisoformat(CLOCK_START)))
    try:
        built.clock.advance_to(when)
    finally:
        built.view_db.close()
        built.ledger.close()


def sandbox_faults(sandbox_url: str, **faults: Any) -> None:
    httpx.post(f"{sandbox_url}/sandbox/faults", json=faults, timeout=30, verify=client_ssl_context()).raise_for_status()


def gateway_charges(sandbox_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{sandbox_url}/sandbox/charges", timeout=60, verify=client_ssl_context()).json()["charges"]


def periods_charged(sandbox_url: str) -> Counter[str]:
    """DONE charges per subscription period (order ids sub-<hex>-p<n>-a<attempt>; a plan
    change's charge, sub-<hex>-p<n>-c<tag>, is not a period's)."""
    return period_counts(gateway_charges(sandbox_url))


def assert_clean_failure(answer: Answer) -> None:
    """A failed answer still has a body with a contract code, and leaks nothing."""
    assert answer.status in (200, 400, 401, 403, 413, 429), (answer.status, answer.body[:300])
    assert answer.code in CONTRACT_CODES, (answer.code, answer.body[:300])
    assert not LEAKS.search(answer.body), answer.body[:500]


def new_users(gql: GraphQL, count: int, prefix: str, card: str = q.GOOD_CARD) -> list[tuple[str, str]]:
    """(user, payment method id) for `count` new users with a card."""
    users = []
    for _ in range(count):
        user = f"{prefix}-{uuid.uuid4().hex[:8]}"
        answer = gql.call(q.REGISTER, {"k": card, "c": f"cust-{user}"}, user=user)
        assert answer.ok, answer.body
        users.append((user, answer.data["registerPaymentMethod"]["id"]))
    return users


def subscribe_all(gql: GraphQL, users: list[tuple[str, str]], plan: str = "basic") -> list[str]:
    ids = []
    for user, method in users:
        answer = gql.call(q.SUBSCRIBE, {"p": plan, "m": method, "t": False}, user=user)
        assert answer.ok, answer.body
        ids.append(answer.data["subscribe"]["id"])
    return ids


def settle_read_models(gql: GraphQL, timeout: float = 60) -> None:
    """Wait until the API's read models have caught up with the ledger (list queries lag)."""

    def caught_up() -> bool:
        answer = gql.call("{ projections { lag } }", user="ops", scope="admin")
        return answer.ok and all(row["lag"] == 0 for row in answer.data["projections"])

    wait_until(caught_up, timeout, "the read models to catch up", interval=0.2)


def subscription_payments(gql: GraphQL, user: str) -> list[str]:
    answer = gql.call(q.SUBSCRIPTIONS, {"u": user}, user="ops", scope="admin")
    assert answer.ok, answer.body
    return [p["status"] for sub in answer.data["subscriptions"] for p in sub["payments"]]


def in_threads(count: int, target: Any) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)


def check_books(deployment: Deployment, gql: GraphQL, users: list[str]) -> None:
    """The closing checks of every fault test."""
    settle_read_models(gql)
    for user in users:
        answer = gql.call(q.WALLET, {"u": user}, user="ops", scope="admin")
        assert answer.ok, answer.body
        wallet = answer.data["wallet"]
        assert min(wallet.values()) >= 0, (user, wallet)
    verify = deployment.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]
    reconcile = deployment.cli("audit", "reconcile")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr[-2000:]
    sandbox_url = deployment.env.get("SUBLEDGER_SANDBOX_URL")
    if sandbox_url:
        twice = {period: n for period, n in periods_charged(sandbox_url).items() if n > 1}
        assert not twice, twice


__all__ = ["wait_until"]
