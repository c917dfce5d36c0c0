"""Which ledger events become webhooks, that their ids survive a rebuild of the read model without
anything being sent again, and that two services sending from one database send each event once."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from tests.api.conftest import Api, GraphQLError
from tests.scenarios.helpers import ADMIN, CANCEL, set_outcome, subscribe
from tests import webhook_support as support
from gateways.sandbox_engine import Faults
from tests.webhook_support import DELIVERIES, PURCHASE, TIMEOUT, Receiver, check_signed, register

receiver, hooks = support.receiver, support.hooks

ALL = ["PAYMENT_SUCCEEDED", "PAYMENT_FAILED", "REFUND_SUCCEEDED", "REFUND_FAILED", "SUBSCRIPTION_CREATED",
       "SUBSCRIPTION_STATUS_CHANGED", "SUBSCRIPTION_PLAN_CHANGED", "POINTS_PURCHASED", "POINTS_EXPIRED"]
REFUND = 'mutation($p: ID!) { refundPayment(input: {paymentId: $p, reason: "asked"}) { id status refundedAmount } }'
REWARD = 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "referral_signup"}) { amount } }'
RUN = "mutation { runScheduledJobs { job } }"


def event_rows(api: Api) -> list[dict[str, Any]]:
    """The live webhook events read model, in ledger order."""
    table = api.built.read_models.runner("webhook_events").current(refresh=True).table
    with api.built.view_db.transaction(readonly=True) as cursor:
        return cursor.execute(f"SELECT id, type, data, created_at, seq FROM {table} ORDER BY seq, id").fetchall()


def test_every_kind_of_change_becomes_an_event_and_a_rebuild_keeps_their_ids(hooks: Api, receiver: Receiver,
                                                                             user: str) -> None:
    _, secret = register(hooks, receiver.url, *ALL)
    method = hooks.add_card(user)
    hooks.gql(PURCHASE, {"m": method}, user=user)
    hooks.settle_read_models()  # the payments list is a read model
    points_payment = hooks.gql("query($u: ID) { payments(userId: $u) { id amount } }", {"u": user},
                               user=user)["payments"][0]
    refunded = hooks.gql(REFUND, {"p": points_payment["id"]}, **ADMIN)["refundPayment"]
    assert refunded["status"] == "REFUNDED"
    sub = subscribe(hooks, user, "basic", paymentMethodId=method)  # a trial
    hooks.gql(CANCEL, {"i": {"subscriptionId": sub["id"]}}, user=user)
    set_outcome(hooks, user, method, "INSUFFICIENT_FUNDS")
    try:
        hooks.gql(PURCHASE, {"m": method}, user=user)
        raise AssertionError("the declined purchase went through")
    except GraphQLError as declined:
        assert declined.code == "PAYMENT_FAILED"
    hooks.gql(REWARD, {"u": user}, **ADMIN)
    # A year on, the rewarded lot expires at the midnight run.
    hooks.built.clock.advance_to(hooks.built.clock.now() + timedelta(days=400))
    hooks.gql(RUN, user="cron", scope="cron")

    receiver.wait_for(7)
    time.sleep(0.3)
    bodies = [check_signed(r, secret) for r in receiver.received()]
    kinds = Counter(b["type"] for b in bodies)
    # The cancellation: CANCELING at once, CANCELED by the run at the trial's end.
    assert kinds == {"payment.succeeded": 1, "points.purchased": 1, "refund.succeeded": 1, "subscription.created": 1,
                     "subscription.status_changed": 2, "payment.failed": 1, "points.expired": 1}, bodies
    changes = sorted((b["created_at"], b["data"]["previousStatus"], b["data"]["status"]) for b in bodies
                     if b["type"] == "subscription.status_changed")
    assert [c[1:] for c in changes] == [("TRIALING", "CANCELING"), ("CANCELING", "CANCELED")]
    by_type = {b["type"]: b["data"] for b in bodies}
    assert by_type["refund.succeeded"]["amount"] == points_payment["amount"] == refunded["refundedAmount"]
    assert by_type["refund.succeeded"]["paymentId"] == points_payment["id"]
    assert [r["amount"] for r in hooks.sandbox.refunds()] == [by_type["refund.succeeded"]["amount"]]
    assert by_type["payment.failed"]["declineCode"] == "INSUFFICIENT_FUNDS"
    assert by_type["subscription.created"]["status"] == "TRIALING"
    assert by_type["subscription.status_changed"]["subscriptionId"] == sub["id"]
    assert by_type["points.expired"]["points"] == 500 and by_type["points.expired"]["userId"] == user

    before = event_rows(hooks)
    assert {row["id"] for row in before} >= {b["id"] for b in bodies}
    count = len(receiver.received())
    hooks.gql('mutation { rebuildProjection(name: "webhook_events") { name lag } }', **ADMIN)
    hooks.settle_read_models()
    assert event_rows(hooks) == before
    assert hooks.gql("mutation { verifyLedger { mismatches } }", **ADMIN)["verifyLedger"]["mismatches"] == []
    hooks.gql(RUN, user="cron", scope="cron")
    time.sleep(0.3)
    assert len(receiver.received()) == count


def test_a_refused_refund_is_a_refund_failed_event_and_the_later_one_a_refund_succeeded(
        hooks: Api, receiver: Receiver, user: str) -> None:
    _, secret = register(hooks, receiver.url, "REFUND_SUCCEEDED", "REFUND_FAILED")
    method = hooks.add_card(user)
    hooks.gql(PURCHASE, {"m": method}, user=user)
    hooks.settle_read_models()
    payment = hooks.gql("query($u: ID) { payments(userId: $u) { id amount } }", {"u": user}, user=user)["payments"][0]
    hooks.sandbox.set_faults(Faults(refuse_refunds=1))  # the provider answers 403 without refunding
    try:
        hooks.gql(REFUND, {"p": payment["id"]}, **ADMIN)
        raise AssertionError("the refused refund went through")
    except GraphQLError as refused:
        assert refused.code == "CONFLICT"
    assert hooks.sandbox.refunds() == []
    refunded = hooks.gql(REFUND, {"p": payment["id"]}, **ADMIN)["refundPayment"]
    assert refunded["status"] == "REFUNDED"

    receiver.wait_for(2)
    time.sleep(0.3)
    bodies = [check_signed(r, secret) for r in receiver.received()]
    # Deliveries run concurrently, so they may arrive in either order (docs/webhooks.md).
    assert sorted(b["type"] for b in bodies) == ["refund.failed", "refund.succeeded"], bodies
    failed, succeeded = (b["data"] for b in sorted(bodies, key=lambda b: b["type"]))
    assert failed["paymentId"] == succeeded["paymentId"] == payment["id"] and failed["userId"] == user
    assert failed["declineCode"] and failed["refundId"] != succeeded["refundId"]
    # Both sides of the money: the provider refunded once, the full amount, as the ledger says.
    assert [r["amount"] for r in hooks.sandbox.refunds()] == [succeeded["amount"]] == [payment["amount"]]
    assert refunded["refundedAmount"] == payment["amount"]


def test_two_services_on_one_database_send_each_event_once(api_factory: Any, receiver: Receiver, user: str) -> None:
    first = api_factory(webhook_poll_seconds=0.02, webhook_timeout_seconds=TIMEOUT)
    second = api_factory(webhook_poll_seconds=0.02, webhook_timeout_seconds=TIMEOUT)
    endpoint, secret = register(first, receiver.url, "POINTS_PURCHASED", "PAYMENT_SUCCEEDED")
    receiver.mode("hang:0.2")  # attempts overlap the other service's passes
    method = first.add_card(user)
    for api in (first, second, first, second):
        api.gql(PURCHASE, {"m": method}, user=user)
    received = receiver.wait_for(8)
    time.sleep(1.0)
    ids = [check_signed(r, secret)["id"] for r in receiver.received()]
    assert len(ids) == len(received) == 8 and len(set(ids)) == 8
    listed = second.gql(DELIVERIES, {"e": endpoint}, **ADMIN)["webhookDeliveries"]
    assert len(listed) == 8 and all(len(d["attempts"]) == 1 and d["status"] == "SUCCEEDED" for d in listed)
    assert json.dumps(listed).count(secret) == 0
