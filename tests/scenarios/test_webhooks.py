"""Webhooks over HTTP, to a real receiver process (tests/webhook_receiver.py), on both databases:
events arrive signed (checked with the snippet of docs/webhooks.md, run as written), a failing
or hanging receiver gets retries with growing delays on the test clock, a day of failures ends
FAILED, redelivery sends the same event id, and only ADMIN registers, with valid URLs only."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

from subledger.master_keys import decode_key, generate_key, master_key_id
from tests import webhook_support as support
from tests.api.conftest import Api
from tests.integration.test_keys import cli
from tests.scenarios.helpers import ADMIN, CHANGE, advance, at, now, subscribe
from tests.webhook_support import (
    CREATE, DELIVERIES, ENDPOINTS, PURCHASE, TIMEOUT, Receiver, check_signed, deliveries, register, wait_attempts,
)

receiver, hooks = support.receiver, support.hooks


def test_a_payment_and_a_subscription_change_arrive_signed(hooks: Api, receiver: Receiver, user: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    endpoint, secret = register(hooks, receiver.url, "PAYMENT_SUCCEEDED", "SUBSCRIPTION_CREATED",
                                "SUBSCRIPTION_STATUS_CHANGED", "SUBSCRIPTION_PLAN_CHANGED", "POINTS_PURCHASED")
    method = hooks.add_card(user)
    hooks.gql(PURCHASE, {"m": method}, user=user)
    sub = subscribe(hooks, user, "basic", paymentMethodId=method, skipTrial=True)
    hooks.gql(CHANGE, {"i": {"subscriptionId": sub["id"], "planId": "premium"}}, user=user)
    hooks.settle_read_models()  # the payments list is a read model
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
    # What the webhooks say was paid is what the gateway charged, order by order.
    orders = {b["data"]["orderId"]: b["data"]["amount"] for b in bodies if b["type"] == "payment.succeeded"}
    assert orders == {c["orderId"]: c["amount"] for c in hooks.sandbox.charges()}
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
    by_status = "query($s: WebhookDeliveryStatus) { webhookDeliveries(status: $s) { id } }"
    assert hooks.gql(by_status, {"s": "FAILED"}, **ADMIN)["webhookDeliveries"] == [{"id": found["id"]}]
    assert hooks.gql(by_status, {"s": "PENDING"}, **ADMIN)["webhookDeliveries"] == []
    by_event = "query($e: ID) { webhookDeliveries(eventId: $e) { id } }"
    assert hooks.gql(by_event, {"e": found["eventId"]}, **ADMIN)["webhookDeliveries"] == [{"id": found["id"]}]
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
    for operation in ('mutation { redeliverWebhook(deliveryId: "wd_missing") { id } }',
                     'mutation { setWebhookEndpointEnabled(id: "we_missing", enabled: true) { id } }',
                     'mutation { rotateWebhookEndpointSecret(id: "we_missing") { secret } }'):
        assert hooks.error(operation, **ADMIN).code == "NOT_FOUND"
    # A NUL byte (PostgreSQL's text cannot hold one) is bad input or a missing id, never INTERNAL.
    assert hooks.error("mutation($i: ID!) { deleteWebhookEndpoint(id: $i) }", {"i": "we_\u0000"}, **ADMIN).code == "NOT_FOUND"
    assert hooks.error("mutation($i: ID!) { redeliverWebhook(deliveryId: $i) { id } }", {"i": "wd_\u0000"},
                       **ADMIN).code == "NOT_FOUND"
    assert hooks.gql("query($i: ID) { webhookDeliveries(endpointId: $i, eventId: $i) { id } }", {"i": "\u0000"},
                     **ADMIN)["webhookDeliveries"] == []
    for bad in ({"url": "https://example.com/\u0000"}, {"description": "a\u0000b"}):
        assert hooks.error(CREATE, {"i": {**document["i"], **bad}}, **ADMIN).code == "BAD_USER_INPUT", bad
    assert hooks.gql(ENDPOINTS, **ADMIN)["webhookEndpoints"] == []


def stored_secret(api: Api, endpoint: str) -> str:
    with api.built.view_db.transaction(readonly=True) as cursor:
        return cursor.execute("SELECT secret FROM webhook_endpoints WHERE id = ?", (endpoint,)).fetchone()["secret"]


def test_the_secret_is_sealed_by_the_master_key_and_keys_rotate_rewraps_it(
    api_factory: Any, receiver: Receiver, user: str, database_url: str
) -> None:
    old, new = generate_key(), generate_key()
    api = api_factory(webhook_poll_seconds=0.05, master_key=old)
    endpoint, secret = register(api, receiver.url, "POINTS_PURCHASED")
    before = stored_secret(api, endpoint)
    assert before.startswith("mk1:") and secret not in before and secret.removeprefix("whsec_") not in before
    api.close()
    done = cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY=new, SUBLEDGER_MASTER_KEY_PREVIOUS=old)
    assert done.returncode == 0, done.stderr
    assert "1 webhook signing secrets re-wrapped" in done.stdout and secret not in done.stdout + done.stderr
    api = api_factory(webhook_poll_seconds=0.05, master_key=new)  # the old key is gone
    after = stored_secret(api, endpoint)
    assert after.startswith(f"mk1:{master_key_id(decode_key(new, (32,)))}:") and after != before
    api.gql(PURCHASE, {"m": api.add_card(user)}, user=user)
    assert check_signed(receiver.wait_for(1)[0], secret)["type"] == "points.purchased"


PAGE = """query($e: ID, $s: WebhookDeliveryStatus, $n: Int, $a: String) {
  webhookDeliveriesPage(endpointId: $e, status: $s, first: $n, after: $a) { items { id } nextCursor } }"""


def test_deliveries_page_by_cursor_like_every_list(hooks: Api, receiver: Receiver, user: str) -> None:
    endpoint, _ = register(hooks, receiver.url, "PAYMENT_SUCCEEDED")
    method = hooks.add_card(user)
    for _ in range(5):
        hooks.gql(PURCHASE, {"m": method}, user=user)
    deadline = time.monotonic() + 20
    while len(listed := deliveries(hooks, endpoint)) < 5:
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)
    walked, cursor, pages = [], None, 0
    while True:
        page = hooks.gql(PAGE, {"e": endpoint, "n": 2, "a": cursor}, **ADMIN)["webhookDeliveriesPage"]
        walked += [d["id"] for d in page["items"]]
        pages += 1
        if (cursor := page["nextCursor"]) is None:
            break
    assert walked == [d["id"] for d in listed] and pages == 3  # 2 + 2 + 1, newest first, none twice
    first = hooks.gql(PAGE, {"e": endpoint, "n": 2}, **ADMIN)["webhookDeliveriesPage"]["nextCursor"]
    for variables in ({"e": endpoint, "s": "FAILED", "n": 2, "a": first},  # another filter's list
                      {"e": endpoint, "n": 2, "a": first[:-1]},  # cut: no longer base64
                      {"e": endpoint, "n": 2, "a": "bm90aWZpY2F0aW9uczp4OjE6MQ=="}):  # not this list's
        assert hooks.error(PAGE, variables, **ADMIN).code == "BAD_USER_INPUT", variables
    assert hooks.error(PAGE, {"e": endpoint}, user=user).code == "FORBIDDEN"
