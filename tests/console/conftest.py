"""The console end to end: one real uvicorn server per module and database, seeded with a scripted history
through the public API, and Debian's Chromium driven by Playwright (no browser download).

Screenshots go to test-output/console/ (gitignored); page weight and time to the first chart
are printed (`-s` shows them; they are also in the captured output of a failure)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from subledger.app import build
from tests.api.conftest import Api, make_settings, module_database_url
from tests.scenarios.helpers import ADMIN, OUTCOME, advance, seoul, subscribe
from tests.servers import serve_asgi

CHROMIUM = os.environ.get("SUBLEDGER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "console"
TOKEN_KEY = "subledger.console.token"
PURCHASE = """mutation($p: ID!, $m: ID!) { purchasePoints(input: {packageId: $p, paymentMethodId: $m}) { payment { id } } }"""
REFUND = """mutation($p: ID!, $a: Int) { refundPayment(input: {paymentId: $p, amount: $a, reason: "asked"}) { id } }"""
CANCEL_NOW = """mutation($id: ID!) { cancelSubscription(input: {subscriptionId: $id, atPeriodEnd: false, reason: "moved"}) { id } }"""


@dataclass
class History:
    """Who is in the scripted history, by role in it."""
    paying: str = "alice"
    trialing: str = "bob"
    past_due: str = "carol"
    suspended: str = "dave"
    canceled: str = "erin"
    subscriptions: dict[str, str] = field(default_factory=dict)


def seed(api: Api) -> History:
    """From 2026-03-01 (KST): five customers subscribe (bob with a trial); alice gets part of her
    first payment back and buys points five days later; erin cancels; carol's and dave's cards decline their
    renewals, so the history ends with one PAST_DUE and one SUSPENDED subscription."""
    history = History()
    methods = {user: api.add_card(user) for user in ("alice", "bob", "carol", "dave", "erin")}
    history.subscriptions["alice"] = subscribe(api, "alice", "basic", paymentMethodId=methods["alice"], skipTrial=True)["id"]
    history.subscriptions["bob"] = subscribe(api, "bob", "premium", paymentMethodId=methods["bob"])["id"]
    history.subscriptions["dave"] = subscribe(api, "dave", "premium", paymentMethodId=methods["dave"], skipTrial=True)["id"]
    history.subscriptions["erin"] = subscribe(api, "erin", "master", paymentMethodId=methods["erin"], skipTrial=True)["id"]
    first = api.gql("query($id: ID!) { subscription(id: $id) { payments { id } } }", {"id": history.subscriptions["alice"]}, user="alice")
    api.gql(REFUND, {"p": first["subscription"]["payments"][0]["id"], "a": 1000}, **ADMIN)
    api.gql(OUTCOME, {"m": methods["dave"], "o": "INSUFFICIENT_FUNDS"}, user="dave")
    advance(api, timedelta(days=5))  # 2026-03-06
    api.gql(PURCHASE, {"p": "starter", "m": methods["alice"]}, user="alice")
    api.gql(CANCEL_NOW, {"id": history.subscriptions["erin"]}, user="erin")
    history.subscriptions["carol"] = subscribe(api, "carol", "basic", paymentMethodId=methods["carol"], skipTrial=True)["id"]
    api.gql(OUTCOME, {"m": methods["carol"], "o": "INSUFFICIENT_FUNDS"}, user="carol")
    # 2026-04-08 12:00: bob's trial ended paid; dave's renewal (04-01) and its retries (04-04, 04-07)
    # failed: SUSPENDED; carol's renewal (04-06) failed: PAST_DUE, retried 04-09.
    advance(api, seoul(2026, 4, 8, 12))
    api.settle_read_models()
    return history


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server per database for the module, seeded with the scripted history."""
    sandbox = SandboxEngine()
    built = build(make_settings(module_database_url(request.param, tmp_path_factory)), sandbox=sandbox)
    server = serve_asgi(built.http)
    url = server.__enter__()
    api = Api(url=url, built=built, client=httpx.Client(timeout=180, verify=client_ssl_context()), sandbox=sandbox, server=server)
    try:
        api.database = request.param  # type: ignore[attr-defined]
        api.history = seed(api)  # type: ignore[attr-defined]
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """test-output/console/, emptied first when pytest runs in one process. Under pytest-xdist
    several workers may write into it at once, and one emptying it would delete another's
    screenshots, so it is left as it is (each screenshot is written over by its own test)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


class Tab:
    """One browser context (its own session storage) on the console, recording every request,
    console error and uncaught exception."""

    def __init__(self, browser: Any, base: str, token: str | None, database: str) -> None:
        self.base = base
        self.database = database
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        if token is not None:
            self.context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r})")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[Any] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r))

    def open(self, hash_path: str) -> Any:
        self.page.goto(f"{self.base}/console/{hash_path}")
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab_factory(browser: Any, console_api: Api) -> Iterator[Any]:
    tabs: list[Tab] = []

    def open_tab(user: str | None = "ops", scope: str = "admin", token: str | None = None) -> Tab:
        given = token if token is not None else (console_api.token(user, scope) if user else None)
        tab = Tab(browser, console_api.url, given, console_api.database)
        tabs.append(tab)
        return tab

    yield open_tab
    for tab in tabs:
        tab.close()
