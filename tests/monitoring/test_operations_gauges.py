"""The database-backed gauges on the API's /metrics (the worker and projector serve the same
names on SUBLEDGER_METRICS_PORT: tests/workers/test_missed_runs.py scrapes a worker's):
when the 00:00 and 09:00 runs last completed, and PENDING payments past the settle delay."""
from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from gateways.sandbox_engine import Faults
from tests.api.conftest import CRON_SECRET, Api, GraphQLError
from tests.api.conftest import api, api_factory, user  # noqa: F401  (fixtures; pytest_plugins is root-only)
from tests.scenarios.helpers import subscribe

LAST_RUN = "subledger_daily_run_last_success_timestamp_seconds"
STALE = "subledger_payments_pending_stale"


def gauges(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = api.client.get(f"{api.url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (LAST_RUN, STALE)
    }


def last_run(api: Api, run: str) -> float:
    return gauges(api)[(LAST_RUN, (("run", run),))]


def cron_run(api: Api) -> None:
    response = api.client.post(f"{api.url}/cron/run", headers={"Authorization": f"Bearer {CRON_SECRET}"})
    assert response.status_code == 200, response.text


def test_last_runs_and_stale_pending_payments(api: Api, user: str) -> None:
    assert last_run(api, "midnight") == 0 and last_run(api, "morning") == 0  # none completed yet
    assert gauges(api)[(STALE, ())] == 0

    # A charge whose answer is lost and whose lookup fails stays PENDING.
    method = api.add_card(user)
    api.sandbox.set_faults(Faults(drop_responses=10_000, lookups_down=True))
    try:
        subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    except GraphQLError as error:
        assert error.code == "CONFLICT"  # "still being confirmed with the provider"
    api.settle_read_models()
    pending = api.built.services.payments.pending_payment_ids(api.built.clock.now() + timedelta(days=1))
    assert len(pending) == 1 and api.sandbox.charges()  # charged at the gateway, outcome unknown here
    assert gauges(api)[(STALE, ())] == 0  # younger than the settle delay (1 minute at least)
    api.built.clock.advance_to(api.built.clock.now() + timedelta(minutes=5))
    assert gauges(api)[(STALE, ())] == 1

    # POST /cron/run runs what both daily runs would: both gauges move to its time.
    cron_run(api)
    ran_at = api.built.clock.now().timestamp()
    assert last_run(api, "midnight") == ran_at and last_run(api, "morning") == ran_at
    assert gauges(api)[(STALE, ())] == 1  # the settle job could not look it up

    api.sandbox.set_faults(Faults())
    api.built.clock.advance_to(api.built.clock.now() + timedelta(days=1))
    cron_run(api)
    api.settle_read_models()
    assert gauges(api)[(STALE, ())] == 0
    assert last_run(api, "midnight") == api.built.clock.now().timestamp() > ran_at
