"""Webhook tests' shared parts: the real receiver process (tests/webhook_receiver.py), the docs'
verification snippet run as written, GraphQL documents and fixtures."""
from __future__ import annotations

import asyncio
import gc
import json
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from domain.clock import TEST_CLOCK_ID
from gateways.tls import client_ssl_context
from projections import webhook_deliveries as delivery_tables
from subledger.storage import Database
from tests.api.conftest import Api
from tests.scenarios.helpers import ADMIN

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1.0

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  secret endpoint { id url eventTypes enabled createdAt } } }"""
ENDPOINTS = "{ webhookEndpoints { id url description eventTypes enabled createdAt secretRotatedAt } }"
DELIVERIES = """query($e: ID) { webhookDeliveries(endpointId: $e) { id endpointId eventId eventType status nextAttemptAt
  createdAt payload attempts { number at responseCode error durationMs } } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) { totalPoints } }"""


def docs_verify() -> Callable[..., bool]:
    """`verify` from docs/webhooks.md's Python snippet, exactly as printed there."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"<!-- verification snippet -->\s*```python\n(.*?)```", text, re.S)
    assert snippet, "docs/webhooks.md lost its verification snippet"
    scope: dict[str, Any] = {}
    exec(snippet.group(1), scope)  # noqa: S102  (the repository's own documentation)
    return scope["verify"]


class Receiver:
    def __init__(self, directory: Path) -> None:
        self.record = directory / "received.jsonl"
        self.record.touch()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "webhook_receiver.py"), str(self.record)],
            stdout=subprocess.PIPE, text=True,
        )
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"

    def mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/_mode", content=mode, timeout=5, verify=client_ssl_context()).raise_for_status()

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the receiver got {len(self.received())} requests, expected {count}")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = Receiver(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def hooks(api_factory: Any) -> Api:
    return api_factory(webhook_poll_seconds=0.05, webhook_timeout_seconds=TIMEOUT)


def register(api: Api, url: str, *types: str) -> tuple[str, str]:
    created = api.gql(CREATE, {"i": {"url": f"{url}/hooks", "eventTypes": list(types)}}, **ADMIN)
    return created["createWebhookEndpoint"]["endpoint"]["id"], created["createWebhookEndpoint"]["secret"]


def deliveries(api: Api, endpoint: str) -> list[dict[str, Any]]:
    return api.gql(DELIVERIES, {"e": endpoint}, **ADMIN)["webhookDeliveries"]


def wait_attempts(api: Api, endpoint: str, count: int, timeout: float = 20) -> dict[str, Any]:
    """The endpoint's one delivery once `count` attempts are recorded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deliveries(api, endpoint)
        if found and len(found[0]["attempts"]) >= count:
            return found[0]
        time.sleep(0.05)
    try:
        doing = what_it_was_doing(api)
    except Exception as failure:  # the evidence must never hide the failure itself
        doing = f"(no diagnostics: {failure!r})"
    raise AssertionError(f"no {count} attempts recorded: {deliveries(api, endpoint)}\n{doing}")


def what_it_was_doing(api: Api) -> str:
    """When a wait runs out: where the served app's webhook and outbox loops (and every task
    of a pass) were awaiting, and on PostgreSQL what each connection to the test's database
    was doing. A rare failure leaves no other evidence."""
    lines = []
    for task in [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]:
        chain, awaited = [], task.get_coro()
        while awaited is not None:  # the chain of awaits, outermost first, down to what it waits on
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            chain.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}:{frame.f_lineno}"
                         if frame is not None else type(awaited).__name__)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        if task.get_name().startswith("subledger") or any("webhooks" in step for step in chain):
            lines.append(f"task {task.get_name()}: " + " -> ".join(chain))
    for ident, frame in sys._current_frames().items():  # threads running a pass's steps
        steps = traceback.extract_stack(frame)
        if ident != threading.get_ident() and any("webhook" in step.filename for step in steps):
            lines.append(f"thread {ident}: " + " -> ".join(f"{st.filename.rsplit('/', 1)[-1]}:{st.name}:{st.lineno}"
                                                         for st in steps[-12:]))
    # The test clock's cached copy in this process, read before anything loads the clock (a
    # load fast-forwards that copy), then its stored events, then the time a pass would read.
    repository = api.built.ledger.repository
    try:
        cached = repository.cache.get(TEST_CLOCK_ID) if repository.cache is not None else None
    except KeyError:
        cached = None
    held = f"v{cached.version} {cached.now}" if cached is not None else "none"
    stored = [(e.originator_version, type(e).__name__, vars(e).get("to", vars(e).get("now")))
              for e in repository.event_store.get(TEST_CLOCK_ID)]
    lines.append(f"test clock stored {stored}; cached {held}")
    # What a pass decides on: the clock it reads, and each delivery's due time and lease.
    now = api.built.clock.now()
    lines.append(f"clock {now.isoformat()} = {delivery_tables.millis(now)} ms; wall {int(time.time() * 1000)} ms")
    with api.built.view_db.transaction(readonly=True) as cursor:
        for table, columns in ((delivery_tables.DELIVERIES, "id, status, attempts, next_attempt_ms, lease_owner, lease_until_ms"),
                               (delivery_tables.ENDPOINTS, "id, enabled")):
            for row in cursor.execute(f"SELECT {columns} FROM {table}").fetchall():
                lines.append(f"{table} {row}")
    url = api.built.settings.database_url
    if url.startswith("postgres"):
        with psycopg.connect(Database.from_url(url).psycopg_conninfo(), autocommit=True) as connection:
            for row in connection.execute(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 160)"
                " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ):
                lines.append("pg " + " | ".join(str(v) for v in row))
    return "\n".join(lines)


def check_signed(request: dict[str, Any], secret: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert docs_verify()(secret, request["body"].encode("utf-8"), headers["subledger-signature"])
    assert not docs_verify()("whsec_another", request["body"].encode("utf-8"), headers["subledger-signature"])
    body = json.loads(request["body"])
    assert headers["subledger-event-id"] == body["id"] and headers["subledger-event-type"] == body["type"]
    assert set(body) == {"id", "type", "created_at", "data"}
    return body
