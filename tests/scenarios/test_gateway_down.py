"""The gateway down for a whole renewal run (connection refused): the attempts are
recorded FAILED with NETWORK_ERROR under the dunning rules, nothing is lost, and
the retry day recovers them once it is back (SPEC §3, issue 4)."""
from __future__ import annotations

from gateways.sandbox_engine import Faults
from tests.api.conftest import Api
from tests.scenarios.helpers import advance, at, seoul, subscribe, subscription


def test_a_refused_run_fails_with_network_error_and_the_retry_day_recovers(api: Api, user: str) -> None:
    others = [f"{user}-{i}" for i in range(3)]
    subs = {
        u: subscribe(api, u, "basic", paymentMethodId=api.add_card(u), skipTrial=True)["id"] for u in [user, *others]
    }
    api.sandbox.set_faults(Faults(refuse=True))
    runs = advance(api, seoul(2026, 4, 1, 0, 30))
    charge = [r for r in runs if r["job"] == "charge_due_subscriptions"][-1]  # the 1 April run
    assert at(charge["ranAt"]) == seoul(2026, 4, 1)
    assert (charge["processed"], charge["failed"]) == (4, 4)
    for owner, sub_id in subs.items():
        sub = subscription(api, owner, sub_id)
        assert (sub["status"], sub["consecutiveFailures"]) == ("PAST_DUE", 1)
        assert [(p["status"], p["failureCode"]) for p in sub["payments"][1:]] == [("FAILED", "NETWORK_ERROR")]
        assert at(sub["nextBillingAt"]) == seoul(2026, 4, 4)
    assert [c for c in api.sandbox.charges() if "-p1-" in c["orderId"]] == []

    api.sandbox.set_faults(Faults())
    advance(api, seoul(2026, 4, 4, 0, 30))
    for owner, sub_id in subs.items():
        sub = subscription(api, owner, sub_id)
        assert (sub["status"], sub["consecutiveFailures"]) == ("ACTIVE", 0)
        assert [p["status"] for p in sub["payments"]] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
        # A PAST_DUE subscription paid on a retry keeps its anchor: the next period ends May 1.
        assert at(sub["nextBillingAt"]) == seoul(2026, 5, 1, 10)
    renewals = [c for c in api.sandbox.charges() if "-p1-" in c["orderId"]]
    assert len(renewals) == 4
