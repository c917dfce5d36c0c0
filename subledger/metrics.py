"""The Prometheus metrics every process registers (API, worker, projector), so each name means
the same thing wherever it is scraped: the API serves them at GET /metrics
(`schema/metrics.py`, with the HTTP middleware and the GraphQL extension that count
requests), the worker and projector on SUBLEDGER_METRICS_PORT (`subledger/metrics_port.py`).

They are defined here, apart from the HTTP side, so a worker or projector registers them
without importing Strawberry and graphql-core, which only the API needs. Job runs are counted in `workers/jobs.py`, where the jobs run.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from domain.payments.payment import Payment

REQUESTS = Counter("subledger_http_requests_total", "HTTP requests answered.", ["route", "method", "status"])
GRAPHQL_ERRORS = Counter("subledger_graphql_errors_total", "GraphQL errors answered, by contract code.", ["code"])
COMMAND_SECONDS = Histogram(
    "subledger_command_seconds", "Latency of GraphQL mutations (commands), by operation.", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROJECTION_LAG = Gauge("subledger_projection_lag_events", "Ledger positions a read model is behind.", ["projection"])
PROJECTION_POSITION = Gauge("subledger_projection_position", "Last ledger position a read model applied.", ["projection"])
DAILY_RUN_LAST_SUCCESS = Gauge(
    "subledger_daily_run_last_success_timestamp_seconds",
    "When the latest completed 00:00 (run=midnight) or 09:00 (run=morning) run finished, Unix time on the"
    " job clock; 0 while none has completed.",
    ["run"],
)
PENDING_PAYMENTS_STALE = Gauge(
    "subledger_payments_pending_stale",
    "PENDING payments requested longer ago than the settle delay (the outcome is still unknown).",
)
CHARGES = Counter(
    "subledger_charges_total", "Charges settled by this process, by outcome and decline code.", ["outcome", "decline_code"]
)


def count_charges(recordings: list[Any]) -> None:
    """A ledger listener: every settled charge this process records."""
    for recording in recordings:
        event = recording.domain_event
        if isinstance(event, Payment.Succeeded):
            CHARGES.labels("SUCCEEDED", "").inc()
        elif isinstance(event, Payment.Failed):
            CHARGES.labels("FAILED", event.failure_code or "OTHER").inc()
