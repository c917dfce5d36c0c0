"""GET /metrics (SPEC §1): Prometheus text with requests, errors by code, command latency,
projection lag, charges by outcome and job runs, on SQLite and PostgreSQL."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import POOR_CARD, Api

SPEND = """mutation { spendPoints(input: {amount: 10, serviceId: "m-1"}) { pointsSpent } }"""
ADJUST = """mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 100, reason: "m"}) { id } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) { totalPoints } }"""


def scrape(api: Api) -> dict[tuple[str, tuple], float]:
    response = api.client.get(f"{api.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_errors_commands_charges_and_jobs(api: Api, user: str) -> None:
    before = scrape(api)
    api.gql(ADJUST, {"u": user}, user="ops", scope="admin")
    api.gql(SPEND, user=user)
    assert api.error(ADJUST, {"u": user}, user=user).code == "FORBIDDEN"
    assert api.error(PURCHASE, {"m": api.add_card(user, POOR_CARD)}, user=user).code == "PAYMENT_FAILED"
    api.gql("mutation { runScheduledJobs { job } }", user="cron", scope="cron")
    api.settle_read_models()
    after = scrape(api)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) >= by

    assert grew("subledger_http_requests_total", 6, route="/graphql", method="POST", status="200")
    assert grew("subledger_http_requests_total", route="/metrics", method="GET", status="200")
    assert grew("subledger_graphql_errors_total", code="FORBIDDEN")
    assert grew("subledger_graphql_errors_total", code="PAYMENT_FAILED")
    assert grew("subledger_command_seconds_count", operation="spendPoints")
    assert grew("subledger_command_seconds_count", operation="adjustPoints")
    assert grew("subledger_charges_total", outcome="FAILED", decline_code="INSUFFICIENT_FUNDS")
    assert grew("subledger_job_runs_total", job="expire_points")
    lags = {labels: v for (name, labels), v in after.items() if name == "subledger_projection_lag_events"}
    assert {dict(labels)["projection"] for labels in lags} >= {"wallet_history", "payments", "aggregates"}
    assert all(v == 0 for v in lags.values())
