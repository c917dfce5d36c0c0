"""The race the 10-minute soak found: a purchase recorded PENDING waits (an overloaded
process) while a settler elsewhere — the stale-payment run of a worker or of the other
API — looks its order up, finds nothing and settles it FAILED. The purchase's own
request must then not be sent: the provider would take money the ledger calls FAILED."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from benchmarks.deployment import CLOCK_START, JWT_SECRET
from benchmarks.gql_client import GOOD_CARD
from subledger.app import build
from subledger.settings import Settings


def test_a_payment_settled_by_a_racing_settler_is_never_sent(database_url: str) -> None:
    built = build(Settings(database_url=database_url, jwt_secret=JWT_SECRET, clock="test",
                           clock_start=datetime.fromisoformat(CLOCK_START)))
    try:
        user, now = f"race-{uuid.uuid4().hex[:8]}", built.clock.now()
        method = asyncio.run(built.billing.register_payment_method(user, "SANDBOX", GOOD_CARD, f"cust-{user}", now))
        waiting = built.ledger.purchases.begin_points_purchase(user, "regular", method["id"], now, None)
        settled = asyncio.run(built.billing.settle_stale(waiting, now))  # the other process's lookup: not found
        assert (settled.status, settled.failure_code) == ("FAILED", "NETWORK_ERROR")
        late = asyncio.run(built.billing.charge(waiting, now))  # the purchase's own request, late
        assert late.status == "FAILED"
        assert built.sandbox is not None and built.sandbox.charges() == []
    finally:
        built.view_db.close()
        built.ledger.close()
