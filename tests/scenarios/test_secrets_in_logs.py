"""No secret in any log line or printed setting (SPEC §7), over a whole billing scenario.

The API is served by uvicorn in this process (its logs reach pytest's caplog and
the service's own handler), renewals are made by a real `subledger worker`
process (its output goes to a file), and every charge goes over HTTP to the
sandbox gateway speaking the Toss API with a Toss secret key. Logging is at
DEBUG, and httpx's request lines are turned back on, so the charge URLs (which
hold the billing key) really are logged: the test checks they come out redacted.
Every secret checked is first shown to have been used by the scenario.

PostgreSQL (the worker's layout) with a password in the database URL: the test
server trusts local connections, so the password is accepted and ignored, yet it
is in every URL the processes were given.
"""
from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from schema.auth import mint_token
from subledger.logging import QUIET_LOGGERS, configure_logging
from tests.api.conftest import GOOD_CARD, JWT_SECRET, Api
from tests.scenarios.helpers import CANCEL, SUBSCRIBE, SUBSCRIPTION, seoul
from tests.servers import serve_asgi
from tests.workers.conftest import clean_redis, start_worker, wait_for  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
REGISTER = """mutation($k: String!, $c: String!) { registerPaymentMethod(input: {provider: TOSS, authKey: $k, customerKey: $c}) { id } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) { payment { id status } } }"""
REFUND = """mutation($p: ID!) { refundPayment(input: {paymentId: $p, reason: "customer asked"}) { status } }"""
EVENTS = "query($u: ID) { events(userId: $u, first: 1000) { type data } }"


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
def pg_password(postgres_url: str) -> str:
    """The base URL's own password when it has one, else a made-up one the trusting server ignores."""
    return urlsplit(postgres_url).password or f"pg-pw-{secrets.token_hex(8)}"


@pytest.fixture
def database_url(postgres_url: str, pg_password: str) -> str:
    return with_password(postgres_url, pg_password)


@pytest.fixture
def service_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The service's logging as `serve` configures it, at DEBUG, with httpx's request lines on;
    restored afterwards so later tests log as before."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS})
    stream = io.StringIO()
    configure_logging("development", level=logging.DEBUG, stream=stream)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)  # the second guard, the filter, must hold alone
    caplog.set_level(logging.DEBUG)
    yield stream
    root.handlers, _ = saved[0], root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_a_full_scenario_logs_no_secret(
    api_factory: Any, start_worker: Any, service_logs: io.StringIO, caplog: pytest.LogCaptureFixture,
    database_url: str, pg_password: str, tmp_path: Path,
) -> None:
    toss_key = f"test_sk_{secrets.token_hex(12)}"
    cron_secret = f"cron-{secrets.token_hex(12)}"
    user = f"user-{secrets.token_hex(5)}"
    engine = SandboxEngine()
    with serve_asgi(create_app(engine), lifespan="off") as gateway_url:
        api: Api = api_factory(gateway="toss", toss_base_url=gateway_url, toss_secret_key=toss_key, cron_secret=cron_secret)
        user_token = mint_token(JWT_SECRET, user, "user", email="minji@example.com")
        admin_token = mint_token(JWT_SECRET, "ops", "admin")
        auditor_token = mint_token(JWT_SECRET, "auditor-1", "auditor")

        method = api.gql(REGISTER, {"k": GOOD_CARD, "c": f"cust-{user}"}, token=user_token)["registerPaymentMethod"]["id"]
        sub = api.gql(SUBSCRIBE, {"i": {"planId": "basic", "paymentMethodId": method, "skipTrial": True}}, token=user_token)["subscribe"]
        bought = api.gql(PURCHASE, {"m": method}, token=user_token)["purchasePoints"]["payment"]
        assert api.gql(REFUND, {"p": bought["id"]}, token=admin_token)["refundPayment"]["status"] == "REFUNDED"
        # The API's own cron endpoint, with its secret.
        cron = httpx.post(f"{api.url}/cron/run", headers={"Authorization": f"Bearer {cron_secret}"}, timeout=60, verify=client_ssl_context())
        assert cron.status_code == 200, cron.text

        # The renewal is charged by the worker process.
        worker = start_worker(
            SUBLEDGER_GATEWAY="toss", SUBLEDGER_TOSS_BASE_URL=gateway_url, SUBLEDGER_TOSS_SECRET_KEY=toss_key,
            SUBLEDGER_CRON_SECRET=cron_secret, SUBLEDGER_DATABASE_URL=database_url,
        )
        api.built.clock.advance_to(seoul(2026, 4, 1, 0, 5))
        wait_for(
            lambda: [p["status"] for p in api.gql(SUBSCRIPTION, {"id": sub["id"]}, token=user_token)["subscription"]["payments"]]
            == ["SUCCEEDED", "SUCCEEDED"],
            timeout=90, what="the worker's renewal",
        )
        canceled = api.gql(CANCEL, {"i": {"subscriptionId": sub["id"]}}, token=user_token)["cancelSubscription"]
        assert canceled["cancelAtPeriodEnd"] is True
        api.settle_read_models()
        assert api.gql(EVENTS, {"u": user}, token=auditor_token)["events"]
        key = api.built.ledger.customer(user).payment_methods[method]["billing_key"]
        worker.terminate()
        worker.wait(timeout=30)

    # Each secret checked was really used: the gateway charged the card three times with the key
    # (subscription, points, renewal by the worker) and refunded once; the worker had the password.
    assert key and key.startswith("bk_sbx_4300000000000001_")
    assert [c["amount"] for c in engine.charges()] == [9900, 5000, 9900]
    assert len(engine.refunds()) == 1
    assert pg_password in database_url
    logs = {
        "service handler": service_logs.getvalue(),
        "caplog": caplog.text + "\n".join(f"{r.msg} {r.args}" for r in caplog.records),
        "worker": (tmp_path / "worker-0.log").read_text(errors="replace"),
    }
    # The logs are not empty, and the charge URLs were logged - redacted.
    assert "/v1/billing/[redacted]" in logs["caplog"] and "/v1/billing/[redacted]" in logs["service handler"]
    assert "renewal" in logs["worker"].lower() or "job" in logs["worker"].lower(), logs["worker"][-2000:]
    used = {
        "billing key": key, "Toss secret key": toss_key, "JWT secret": JWT_SECRET, "cron secret": cron_secret,
        "database password": pg_password, "user token": user_token, "admin token": admin_token,
        "auditor token": auditor_token, "card number": "4300000000000001",
    }
    for where, text in logs.items():
        for what, secret in used.items():
            assert secret not in text, f"{what} in the {where} log"


def test_serve_prints_the_database_url_without_its_password(database_url: str, pg_password: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(SUBLEDGER_DATABASE_URL=database_url, SUBLEDGER_JWT_SECRET=JWT_SECRET, SUBLEDGER_CLOCK="test")
    process = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "serve", "--port", "0"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        printed = ""
        deadline = time.monotonic() + 60
        while "development token" not in printed and time.monotonic() < deadline and process.poll() is None:
            printed += process.stdout.readline()  # type: ignore[union-attr]
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    printed += rest or ""
    assert "subledger on" in printed, printed
    assert pg_password in database_url
    assert pg_password not in printed and JWT_SECRET not in printed
    assert f"{urlsplit(database_url).username}:[redacted]@" in printed
