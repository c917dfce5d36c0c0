"""Prometheus metrics of the processes that serve no HTTP: the worker and the projector
(docs/operations-monitoring.md).

With SUBLEDGER_METRICS_PORT set they serve prometheus_client's own HTTP exporter on that
port: the same process-wide registry the API serves at /metrics (charges, job runs,
projection lag ...), so the counters are scraped from the process where they move.
Gauges that live in the database (the latest completed daily runs, PENDING payments
older than the settle delay, projection lag) are read when scraped, as the API does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.metrics_core import Metric

from subledger.metrics import DAILY_RUN_LAST_SUCCESS, PENDING_PAYMENTS_STALE, PROJECTION_LAG, PROJECTION_POSITION
from workers.run_records import DailyRun, RunRecords
from workers.settle import STALE_AFTER

log = structlog.get_logger("subledger.metrics")


class DatabaseGauges:
    """Sets the gauges that are read from the database; `refresh` blocks (call it off the loop)."""

    def __init__(
        self,
        records: RunRecords,
        payments: Any,  # projections.payments.PaymentsQueries
        clock: Any,
        settle_grace: timedelta,
        projection_status: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.records = records
        self.payments = payments
        self.clock = clock
        #: A PENDING payment younger than this may still be in its own request (workers/settle.py).
        self.settle_delay = max(STALE_AFTER, settle_grace)
        self.projection_status = projection_status

    def refresh(self) -> None:
        for run in DailyRun:
            last = self.records.last(run)
            DAILY_RUN_LAST_SUCCESS.labels(run.value).set(last.completed_at.timestamp() if last else 0)
        PENDING_PAYMENTS_STALE.set(self.payments.count_pending(self.clock.now() - self.settle_delay))
        if self.projection_status is not None:
            for row in self.projection_status():
                PROJECTION_LAG.labels(row["name"]).set(row["lag"])
                PROJECTION_POSITION.labels(row["name"]).set(row["position"])


class _RefreshedRegistry:
    """The process-wide registry, with the database gauges read first on every scrape."""

    def __init__(self) -> None:
        self.refresh: Callable[[], None] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.refresh is not None:
            try:
                self.refresh()
            except Exception as error:  # the database is away: still answer the counters
                log.warning("metrics_refresh_failed", error=type(error).__name__)
        yield from REGISTRY.collect()


_served: dict[int, _RefreshedRegistry] = {}


def serve_metrics(port: int, refresh: Callable[[], None], addr: str = "0.0.0.0") -> None:
    """Serve the metrics on `port` (once per process: a worker that restarts after losing
    Redis builds again and only swaps the refresh it reads from)."""
    registry = _served.get(port)
    if registry is None:
        registry = _served[port] = _RefreshedRegistry()
        start_http_server(port, addr=addr, registry=registry)
        log.info("metrics_served", port=port)
    registry.refresh = refresh
