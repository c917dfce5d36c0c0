"""The arq worker sends webhooks: the API's own sending loop is idle here (one pass an hour), so
only the `subledger worker` process can deliver, signed, to the real receiver process."""
from __future__ import annotations

from typing import Any

from tests import webhook_support as support
from tests.webhook_support import PURCHASE, TIMEOUT, Receiver, check_signed, deliveries, register
from tests.workers.conftest import wait_for

receiver = support.receiver


def test_the_worker_delivers_webhooks(api_factory: Any, receiver: Receiver, user: str, start_worker: Any) -> None:
    api = api_factory(webhook_poll_seconds=3600, webhook_timeout_seconds=TIMEOUT)
    endpoint, secret = register(api, receiver.url, "PAYMENT_SUCCEEDED", "POINTS_PURCHASED")
    api.gql(PURCHASE, {"m": api.add_card(user)}, user=user)
    api.settle_read_models()
    assert receiver.received() == [] and all(not d["attempts"] for d in deliveries(api, endpoint))
    start_worker()
    received = wait_for(lambda: (found := receiver.received()) and len(found) >= 2 and found, what="the worker's sends")
    assert sorted(check_signed(r, secret)["type"] for r in received) == ["payment.succeeded", "points.purchased"]
    listed = wait_for(lambda: (found := deliveries(api, endpoint)) and all(d["status"] == "SUCCEEDED" for d in found)
                      and found, what="the attempts recorded")
    assert len(listed) == 2 and all(len(d["attempts"]) == 1 for d in listed)
