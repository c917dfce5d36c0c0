"""The dunning timeline of SPEC §3 (day 0, +3, +6 → SUSPENDED) driven by the arq cron
of a real `subledger worker` (fast schedule) rather than by advanceTestClock: the test
only moves the test clock; every charge is made by the worker."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.api.conftest import Api
from tests.scenarios.helpers import at, seoul, set_outcome, subscribe, subscription
from tests.workers.conftest import wait_for


def test_dunning_by_the_worker(api_factory: Any, sandbox_server: tuple[str, Any], start_worker, user: str) -> None:
    url, engine = sandbox_server
    api = api_factory(sandbox_url=url)
    method = api.add_card(user)
    sub_id = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)["id"]
    set_outcome(api, user, method, "INSUFFICIENT_FUNDS")
    # A witness that pays normally: its renewals show when the worker has run at a given time.
    witness = f"{user}-witness"
    witness_sub = subscribe(api, witness, "basic", paymentMethodId=api.add_card(witness), skipTrial=True)["id"]
    start_worker(SUBLEDGER_SANDBOX_URL=url)

    def on(day: datetime, failures: int, status: str) -> dict:
        api.built.clock.advance_to(day)
        return wait_for(
            lambda: _state(api, user, sub_id, failures, status),
            timeout=60,
            what=f"{failures} failure(s) at {day.isoformat()}",
        )

    sub = on(seoul(2026, 4, 1, 0, 5), 1, "PAST_DUE")
    assert at(sub["nextBillingAt"]) == seoul(2026, 4, 4)
    sub = on(seoul(2026, 4, 4, 0, 5), 2, "PAST_DUE")
    assert at(sub["nextBillingAt"]) == seoul(2026, 4, 7)
    sub = on(seoul(2026, 4, 7, 0, 5), 3, "SUSPENDED")
    assert sub["nextBillingAt"] is None
    assert [(p["status"], p["failureCode"], p["attempt"]) for p in sub["payments"]] == [
        ("SUCCEEDED", None, 1),
        ("FAILED", "INSUFFICIENT_FUNDS", 1),
        ("FAILED", "INSUFFICIENT_FUNDS", 2),
        ("FAILED", "INSUFFICIENT_FUNDS", 3),
    ]
    # Suspended: once the worker has run on 2 May (the witness's May renewal is paid), still no further charge.
    api.built.clock.advance_to(seoul(2026, 5, 2))
    wait_for(lambda: len(subscription(api, witness, witness_sub)["payments"]) == 3, timeout=60, what="a run on 2 May")
    assert len(subscription(api, user, sub_id)["payments"]) == 4


def _state(api: Api, user: str, sub_id: str, failures: int, status: str) -> dict | None:
    sub = subscription(api, user, sub_id)
    return sub if (sub["consecutiveFailures"], sub["status"]) == (failures, status) else None
