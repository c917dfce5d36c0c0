"""Webhooks over HTTP, to a real receiver process (tests/webhook_receiver.py), on both databases:
events arrive signed (checked with the snippet of docs/webhooks.md, run as written), a failing
or hanging receiver gets retries with growing delays on the test clock, a day of failures ends
FAILED, redelivery sends the same event id, and only ADMIN registers, with valid URLs only."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api
from tests.scenarios.helpers import ADMIN, CHANGE, advance, at, now, subscribe

ROOT = Path(__file__).resolve().parents[2]
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
        httpx.post(f"{self.url}/_mode", content=mode, timeout=5).raise_for_status()

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
    raise AssertionError(f"no {count} attempts recorded: {deliveries(api, endpoint)}")


def check_signed(request: dict[str, Any], secret: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert docs_verify()(secret, request["body"].encode("utf-8"), headers["subledger-signature"])
    assert not docs_verify()("whsec_another", request["body"].encode("utf-8"), headers["subledger-signature"])
    body = json.loads(request["body"])
    assert headers["subledger-event-id"] == body["id"] and headers["subledger-event-type"] == body["type"]
    assert set(body) == {"id", "type", "created_at", "data"}
    return body


def test_a_payment_and_a_subscription_change_arrive_signed(hooks: Api, receiver: Receiver, user: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    endpoint, secret = register(hooks, receiver.url, "PAYMENT_SUCCEEDED", "SUBSCRIPTION_CREATED",
                                "SUBSCRIPTION_STATUS_CHANGED", "SUBSCRIPTION_PLAN_CHANGED", "POINTS_PURCHASED")
    method = hooks.add_card(user)
    hooks.gql(PURCHASE, {"m": method}, user=user)
    sub = subscribe(hooks, user, "basic", paymentMethodId=method, skipTrial=True)
    hooks.gql(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "premium"}}, user=user)
    changed = [p for p in hooks.gql("query($u: ID) { payments(userId: $u) { id amount status } }", {"u": user},
                                    user=user)["payments"]]
    # points, the first period, the upgrade's proration: three payments, three payment.succeeded events.
    expected = {"payment.succeeded": 3, "points.purchased": 1, "subscription.created": 1,
                "subscription.status_changed": 0, "subscription.plan_changed": 1}
    received = receiver.wait_for(sum(expected.values()))
    time.sleep(0.3)  # nothing more comes
    bodies = [check_signed(r, secret) for r in receiver.received()]
    assert {t: sum(b["type"] == t for b in bodies) for t in expected} == expected, bodies
    assert len(bodies) == len(received) and len({b["id"] for b in bodies}) == len(bodies)

    paid = {b["data"]["paymentId"]: b["data"]["amount"] for b in bodies if b["type"] == "payment.succeeded"}
    assert paid == {p["id"]: p["amount"] for p in changed if p["status"] == "SUCCEEDED"}
    assert all(amount > 0 for amount in paid.values())
    plan = next(b for b in bodies if b["type"] == "subscription.plan_changed")["data"]
    assert (plan["subscriptionId"], plan["previousPlanId"], plan["planId"], plan["userId"]) == (
        sub["id"], "basic", "premium", user)
    created = next(b for b in bodies if b["type"] == "subscription.created")["data"]
    assert (created["status"], created["planId"]) == ("ACTIVE", "basic")

    listed = deliveries(hooks, endpoint)
    assert len(listed) == len(bodies) and {d["status"] for d in listed} == {"SUCCEEDED"}
    assert all(len(d["attempts"]) == 1 and d["attempts"][0]["responseCode"] == 200 for d in listed)
    assert {d["eventId"] for d in listed} == {b["id"] for b in bodies}
    # The secret was answered once: never in lists, and never in a log line.
    for document in (ENDPOINTS, DELIVERIES):
        assert secret not in json.dumps(hooks.post(document, {"e": endpoint}, hooks.token("ops", "admin")))
    logged = capsys.readouterr()
    assert logged.out.count("webhook_attempt") >= len(bodies)
    assert secret not in logged.out + logged.err


def test_retries_grow_a_timeout_counts_then_success_and_redelivery(hooks: Api, receiver: Receiver, user: str) -> None:
    endpoint, secret = register(hooks, receiver.url, "POINTS_PURCHASED")
    receiver.mode("fail")
    hooks.gql(PURCHASE, {"m": hooks.add_card(user)}, user=user)
    first = wait_attempts(hooks, endpoint, 1)
    assert first["status"] == "PENDING" and first["attempts"][0]["responseCode"] == 500
    assert first["attempts"][0]["error"] == "HTTP 500"
    delays = [at(first["nextAttemptAt"]) - at(first["attempts"][0]["at"])]

    receiver.mode(f"hang:{TIMEOUT * 3}")
    advance(hooks, at(first["nextAttemptAt"]))
    second = wait_attempts(hooks, endpoint, 2)
    timed_out = second["attempts"][1]
    assert timed_out["responseCode"] is None and "timed out" in timed_out["error"]
    assert timed_out["durationMs"] >= TIMEOUT * 1000 * 0.9 and second["status"] == "PENDING"
    delays.append(at(second["nextAttemptAt"]) - at(timed_out["at"]))

    receiver.mode("fail")
    advance(hooks, at(second["nextAttemptAt"]))
    third = wait_attempts(hooks, endpoint, 3)
    delays.append(at(third["nextAttemptAt"]) - at(third["attempts"][2]["at"]))
    # 30 s, 60 s, 120 s, each times a jitter in [0.8, 1.2): growing.
    assert timedelta(seconds=24) <= delays[0] < timedelta(seconds=36)
    assert delays[0] < delays[1] < delays[2] and delays[2] >= timedelta(seconds=96), delays

    receiver.mode("ok")
    advance(hooks, at(third["nextAttemptAt"]))
    done = wait_attempts(hooks, endpoint, 4)
    assert done["status"] == "SUCCEEDED" and done["nextAttemptAt"] is None
    assert [a["responseCode"] for a in done["attempts"]] == [500, None, 500, 200]
    requests = receiver.wait_for(4)
    assert len({check_signed(r, secret)["id"] for r in requests}) == 1

    again = hooks.gql("mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id status } }", {"d": done["id"]}, **ADMIN)
    assert again["redeliverWebhook"] == {"id": done["id"], "status": "PENDING"}
    redelivered = receiver.wait_for(5)[4]
    assert check_signed(redelivered, secret)["id"] == done["eventId"] == json.loads(requests[0]["body"])["id"]
    assert wait_attempts(hooks, endpoint, 5)["status"] == "SUCCEEDED"


def test_a_day_of_failures_ends_failed(hooks: Api, receiver: Receiver, user: str) -> None:
    endpoint, _ = register(hooks, receiver.url, "PAYMENT_SUCCEEDED")
    receiver.mode("fail")
    hooks.gql(PURCHASE, {"m": hooks.add_card(user)}, user=user)
    first = wait_attempts(hooks, endpoint, 1)
    started = at(first["createdAt"])
    advance(hooks, started + timedelta(hours=25))
    deadline = time.monotonic() + 20
    while (found := deliveries(hooks, endpoint)[0])["status"] != "FAILED":
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    assert found["nextAttemptAt"] is None and len(found["attempts"]) >= 2
    assert {a["responseCode"] for a in found["attempts"]} == {500}
    # The last attempt came after the day was (nearly) over; none after it, even later.
    assert at(found["attempts"][-1]["at"]) >= started + timedelta(hours=22)
    count = len(receiver.received())
    advance(hooks, now(hooks) + timedelta(hours=2))
    time.sleep(0.3)
    assert len(receiver.received()) == count == len(found["attempts"])


def test_only_admin_registers_and_bad_urls_are_refused(hooks: Api) -> None:
    document = {"i": {"url": "https://example.com/hooks", "eventTypes": ["PAYMENT_SUCCEEDED"]}}
    for who in ({"user": "someone"}, {"user": "a-1", "scope": "analyst"}, {"user": "c-1", "scope": "cron"},
                {"user": "s-1", "scope": "system"}):
        assert hooks.error(CREATE, document, **who).code == "FORBIDDEN"
        assert hooks.error(ENDPOINTS, **who).code == "FORBIDDEN"
    for url in ("ftp://example.com/hooks", "example.com/hooks", "http://", "https://user:pw@example.com/hooks",
                "javascript:alert(1)", "", "https://example.com:99999/"):
        error = hooks.error(CREATE, {"i": {**document["i"], "url": url}}, **ADMIN)
        assert error.code == "BAD_USER_INPUT", (url, error.errors)
    assert hooks.error(CREATE, {"i": {**document["i"], "eventTypes": []}}, **ADMIN).code == "BAD_USER_INPUT"
    assert hooks.gql(ENDPOINTS, **ADMIN)["webhookEndpoints"] == []

    made = hooks.gql(CREATE, document, **ADMIN)["createWebhookEndpoint"]
    listed = hooks.gql(ENDPOINTS, **ADMIN)["webhookEndpoints"]
    assert [e["id"] for e in listed] == [made["endpoint"]["id"]] and listed[0]["enabled"] is True
    off = hooks.gql("mutation($id: ID!) { setWebhookEndpointEnabled(id: $id, enabled: false) { enabled } }",
                    {"id": made["endpoint"]["id"]}, **ADMIN)
    assert off["setWebhookEndpointEnabled"]["enabled"] is False
    rotated = hooks.gql("mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret endpoint { secretRotatedAt } } }",
                        {"id": made["endpoint"]["id"]}, **ADMIN)["rotateWebhookEndpointSecret"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    assert rotated["endpoint"]["secretRotatedAt"] is not None
    assert hooks.gql("mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }", {"id": made["endpoint"]["id"]},
                     **ADMIN)["deleteWebhookEndpoint"] == made["endpoint"]["id"]
    assert hooks.gql(ENDPOINTS, **ADMIN)["webhookEndpoints"] == []
    missing = hooks.error("mutation { deleteWebhookEndpoint(id: \"we_missing\") }", **ADMIN)
    assert missing.code == "NOT_FOUND"
