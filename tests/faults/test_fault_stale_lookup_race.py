"""Found by the 10-minute soak (docs/faults.md): a settler that looked an order up while
the order's own charge was still on its way through the gateway found no order, settled
the payment FAILED (NETWORK_ERROR), and then the gateway charged it: the ledger said FAILED
(the buyer was told PAYMENT_FAILED), the gateway DONE. The settle job now leaves a PENDING
charge recorded less than SUBLEDGER_SETTLE_GRACE_SECONDS ago (wall clock) to a later run:
its own request may still reach the provider.

The gateway here is the sandbox over real HTTP whose charges take 2 s before they are
processed (lookups answer at once), as an overloaded provider's would; the settler is the
midnight run of the test clock advanced a day meanwhile (the payment is then stale)."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from tests.api.conftest import Api, api_factory, user  # noqa: F401  (fixtures)
from tests.servers import serve_asgi

PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) {
  payment { status } } }"""
ADVANCE = "mutation($to: DateTime!) { advanceTestClock(to: $to) { job } }"
RECONCILE = "{ reconciliation { clean disagreements { finding orderId ledger gateway } } }"


class SlowChargeEngine(SandboxEngine):
    """Charges are processed `delay` seconds after they arrive; everything else answers at once."""

    delay = 2.0

    async def charge(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await super().charge(*args, **kwargs)


@pytest.fixture
def slow_charges() -> Iterator[tuple[str, SlowChargeEngine]]:
    engine = SlowChargeEngine()
    with serve_asgi(create_app(engine), lifespan="off") as url:
        yield url, engine


def test_a_settler_never_fails_an_order_whose_charge_is_still_on_its_way(api_factory, slow_charges, user) -> None:
    url, engine = slow_charges
    # The production grace (tests elsewhere run with 0 to settle crashes at once).
    api: Api = api_factory(sandbox_url=url, settle_grace_seconds=90)
    method = api.add_card(user)
    answers: list[Any] = []

    def buy() -> None:
        try:
            answers.append(api.gql(PURCHASE, {"m": method}, user=user))
        except AssertionError as error:  # a GraphQL error (PAYMENT_FAILED) is an answer too
            answers.append(error)

    buyer = threading.Thread(target=buy)
    buyer.start()
    time.sleep(0.7)  # the purchase is PENDING in the ledger, its charge at the gateway
    api.gql(ADVANCE, {"to": (api.built.clock.now() + timedelta(days=1)).isoformat()}, user="ops", scope="admin")
    buyer.join(timeout=60)
    assert answers and len(engine.charges()) == 1
    report = api.gql(RECONCILE, user="audit", scope="auditor")["reconciliation"]
    assert report["clean"], report["disagreements"]

