"""`subledger bench renewals`: wall time to charge N due subscriptions (default 100,000)
through the sandbox gateway with 50 ms latency and a concurrency cap of 64, against
the floor N × latency / cap, and the charging process's peak RSS (DESIGN.md).

Setup writes N customers with a card and a trial ending on one day straight into the
ledger in large batches (the same aggregates `subscribe` creates), and brings the read
models up to date. The charge run then happens in a fresh process — the same
`charge_due_subscriptions` job a worker runs — so its RSS is the worker's own.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from rich.progress import Progress

from benchmarks.common import emit, peak_rss_mb
from domain.customer import Customer
from domain.subscription import Subscription
from gateways.sandbox_engine import Faults, SandboxEngine
from subledger.app import build
from subledger.settings import Settings

LATENCY_MS = 50
CAP = 64
BATCH = 500
START = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)  # 10:00 in Seoul
TRIAL_DAYS = 7


def bench_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, jwt_secret="bench" * 8, clock="test", clock_start=START,
        charge_concurrency=CAP, threads=CAP, gateway_retry_base_seconds=0.05,
    )


def setup(database_url: str, count: int) -> None:
    built = build(bench_settings(database_url))
    try:
        card = asyncio.run(built.gateways["SANDBOX"].issue_billing_key("test_card_4300000000000001", "bench"))
        ledger = built.ledger
        with Progress(transient=True) as progress:
            task = progress.add_task(f"writing {count:,} trialing subscriptions", total=count)
            for first in range(0, count, BATCH):
                aggregates = []
                for _ in range(first, min(first + BATCH, count)):
                    user, sub_id = f"bench-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
                    customer = Customer(user_id=user, at=START)
                    method_id = f"pm_bench_{uuid.uuid4().hex[:16]}"
                    customer.add_payment_method(method_id, "SANDBOX", card.billing_key, "bench", None, START)
                    customer.open_subscription(sub_id, START)
                    customer.start_trial(START)
                    subscription = Subscription.start(
                        subscription_id=sub_id, user_id=user, plan_id="basic", cycle="MONTHLY", list_price=9900,
                        promo=None, payment_method_id=method_id, trial_days=TRIAL_DAYS, now=START, tz=ledger.tz,
                    )
                    aggregates += [customer, subscription]
                ledger.save(*aggregates)
                progress.update(task, advance=len(aggregates) // 2)
            task = progress.add_task("bringing the read models up to date", total=None)
            built.catch_up()
    finally:
        built.ledger.close()


async def _charge(database_url: str) -> dict[str, float]:
    """The worker's side: one run of the charge job at the trial-end day's 00:00."""
    from workers.subscription_jobs import charge_due_subscriptions

    engine = SandboxEngine()
    engine.set_faults(Faults(latency_ms=LATENCY_MS, max_concurrency=CAP))
    built = build(bench_settings(database_url), sandbox=engine)
    due_at = datetime(2026, 3, 7, 15, 0, tzinfo=timezone.utc)  # 2026-03-08 00:00 in Seoul
    built.clock.advance_to(due_at)
    began = time.perf_counter()
    counts = await charge_due_subscriptions(built.jobs.ctx, due_at)
    wall = time.perf_counter() - began
    charged = len(engine.charges())
    built.ledger.close()
    return {"wall_s": wall, "charged_at_gateway": charged, "rss_mb": peak_rss_mb(), **counts}


def run(database_url: str, count: int = 100_000) -> None:
    started = time.perf_counter()
    setup(database_url, count)
    setup_s = time.perf_counter() - started
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.renewals", database_url],
        capture_output=True, text=True, check=True, env={**os.environ},
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    floor = count * LATENCY_MS / 1000 / CAP
    emit(
        "renewals",
        subscriptions=count,
        latency_ms=LATENCY_MS,
        concurrency_cap=CAP,
        wall_s=round(figures["wall_s"], 2),
        floor_s=round(floor, 2),
        ratio=round(figures["wall_s"] / floor, 3),
        target_ratio=1.25,
        charged_at_gateway=figures["charged_at_gateway"],
        succeeded=figures["succeeded"],
        failed=figures["failed"],
        worker_peak_rss_mb=figures["rss_mb"],
        setup_s=round(setup_s, 1),
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_charge(sys.argv[1]))))
