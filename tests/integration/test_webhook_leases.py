"""Webhook deliveries in the database, on both databases: fan-out is compare-and-set, a claimed
delivery is leased to one sender until its lease ends, and only the lease holder records."""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from domain.errors import Conflict
from domain.webhooks import DeliveryStatus, RetryPolicy, WebhookEventType
from projections.database import ViewDatabase
from projections.webhook_deliveries import Attempt, WebhookDeliveries
from subledger.master_keys import MasterKeyring, decode_key, generate_key
from subledger.storage import Database
from subledger.webhook_endpoints import WebhookEndpoints
from workers.webhooks import WebhookDispatcher

NOW = datetime(2026, 3, 1, 1, tzinfo=timezone.utc)
EVENT = {"id": "evt_1", "type": "payment.succeeded", "data": '{"amount": 1000}', "created_at": NOW.isoformat(), "seq": 5}


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[WebhookEndpoints, WebhookDeliveries]]:
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=8)
    yield WebhookEndpoints(view_db, MasterKeyring(), https_only=False), WebhookDeliveries(view_db)
    view_db.close()


def one_endpoint(endpoints: WebhookEndpoints) -> Any:
    endpoint, _ = endpoints.create("http://127.0.0.1:9/hooks", [WebhookEventType.PAYMENT_SUCCEEDED], None, 0, NOW)
    return endpoint


def test_fan_out_moves_the_position_once(stores: Any) -> None:
    endpoints, deliveries = stores
    endpoint = one_endpoint(endpoints)
    other = {**EVENT, "id": "evt_2", "type": "points.expired", "seq": 6}
    assert deliveries.fan_out(endpoint, [EVENT, other], NOW) == 1  # it wants payments only
    assert deliveries.fan_out(endpoint, [EVENT, other], NOW) == 0  # a stale position writes nothing
    assert endpoints.get(endpoint.id).position == 6
    (delivery,) = deliveries.page(endpoint.id, None, None, 10)
    assert (delivery.event_id, delivery.status, delivery.attempts) == ("evt_1", DeliveryStatus.PENDING, 0)


def test_a_claim_is_one_senders_until_its_lease_ends(stores: Any) -> None:
    endpoints, deliveries = stores
    endpoint = one_endpoint(endpoints)
    deliveries.fan_out(endpoint, [EVENT], NOW)
    assert deliveries.claim_due(NOW - timedelta(seconds=1), "early", 1_000, 500, 10) == []  # not due yet
    # Eight senders at once: one gets it.
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda n: deliveries.claim_due(NOW, f"sender-{n}", 1_000, 500, 10), range(8)))
    winners = [n for n, claimed in enumerate(claims) if claimed]
    assert len(winners) == 1
    holder = f"sender-{winners[0]}"
    (delivery,) = claims[winners[0]]
    assert deliveries.claim_due(NOW, "late", 1_499, 500, 10) == []  # the lease still runs
    with pytest.raises(Conflict):  # no redelivery while an attempt is in flight
        deliveries.redeliver(delivery.id, NOW, 1_400)
    taken = deliveries.claim_due(NOW, "late", 1_501, 500, 10)  # it ended: the holder is presumed dead
    assert [d.id for d in taken] == [delivery.id]
    attempt = Attempt(1, NOW, 200, None, 12)
    assert not deliveries.record(delivery, holder, attempt, DeliveryStatus.SUCCEEDED, None)  # lost its lease
    assert deliveries.record(taken[0], "late", attempt, DeliveryStatus.SUCCEEDED, None)
    (done,) = deliveries.page(endpoint.id, None, None, 10)
    assert done.status is DeliveryStatus.SUCCEEDED and [a.response_code for a in done.history] == [200]
    assert deliveries.claim_due(NOW + timedelta(days=2), "any", 10_000, 500, 10) == []  # nothing left to send


def test_a_disabled_endpoints_deliveries_wait(stores: Any) -> None:
    endpoints, deliveries = stores
    endpoint = one_endpoint(endpoints)
    deliveries.fan_out(endpoint, [EVENT], NOW)
    endpoints.set_enabled(endpoint.id, False)
    assert deliveries.claim_due(NOW, "sender", 1_000, 500, 10) == []
    assert deliveries.fan_out(endpoints.get(endpoint.id), [{**EVENT, "id": "evt_3", "seq": 7}], NOW) == 0
    endpoints.set_enabled(endpoint.id, True)
    assert [d.event_id for d in deliveries.claim_due(NOW, "sender", 1_000, 500, 10)] == ["evt_1"]
    endpoints.delete(endpoint.id)
    assert deliveries.page(None, None, None, 10) == [] and endpoints.all() == []


async def test_a_secret_sealed_by_an_unknown_master_key_is_a_failed_attempt_not_a_send(database_url: str) -> None:
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=4)
    try:
        old = MasterKeyring(decode_key(generate_key(), (32,)))
        endpoint = one_endpoint(WebhookEndpoints(view_db, old, https_only=False))
        new = WebhookEndpoints(view_db, MasterKeyring(decode_key(generate_key(), (32,))), https_only=False)

        async def run_sync(fn: Any, *args: Any) -> Any:
            return fn(*args)

        events = [EVENT]
        dispatcher = WebhookDispatcher(new, WebhookDeliveries(view_db), lambda seq, n: [e for e in events if e["seq"] > seq],
                                       run_sync, policy=RetryPolicy(), timeout=1.0, jitter=lambda: 0.5)
        counts = await dispatcher.run(NOW)
        await dispatcher.aclose()
        assert counts == {"processed": 1, "succeeded": 0, "failed": 0}
        (delivery,) = WebhookDeliveries(view_db).page(endpoint.id, None, None, 10)
        (attempt,) = delivery.history
        assert attempt.response_code is None and "cannot be unsealed (UnknownMasterKey)" in attempt.error
        assert delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at == NOW + timedelta(seconds=30)
    finally:
        view_db.close()
