"""`subledger bench renewals`: wall time to charge N due subscriptions (default 100,000)
through the sandbox gateway with 50 ms latency and a concurrency cap of 64, against
the floor N × latency / cap, and the charging processes' peak RSS (docs/performance.md).
With `processes` above 1 the run is split as SUBLEDGER_CHARGE_PROCESSES splits it
(workers/charge_processes.py): CPU is counted over every process, RSS is the largest one's.

The gateway is the sandbox gateway's server (`subledger sandbox-gateway`) in a process of
its own, reached over HTTP as a worker reaches a provider: its CPU and memory are not the
worker's. Setup writes N customers with a card and a trial ending on one day straight into
the ledger in large batches (the same aggregates `subscribe` creates), and brings the read
models up to date. The charge run then happens in a fresh process — the same
`charge_due_subscriptions` job a worker runs — so its RSS is the worker's own. Both sides
of the money are counted: the charges the gateway recorded (and their sum) against the
payments the ledger's read model holds as SUCCEEDED.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import httpx
from rich.progress import Progress

from benchmarks.common import emit, peak_rss_mb
from benchmarks.cpu import CpuMeter
from benchmarks.deployment import Deployment, make_workdir
from domain.customer import Customer
from domain.ports import BillingKey, PaymentGateway
from domain.subscription import Subscription
from gateways.tls import client_ssl_context
from subledger.app import build
from subledger.settings import Settings

LATENCY_MS = 50
CAP = 64
BATCH = 500
START = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)  # 10:00 in Seoul
TRIAL_DAYS = 7


def bench_settings(database_url: str, sandbox_url: str, processes: int = 1) -> Settings:
    """The ledger's threads are the service's default (SUBLEDGER_THREADS, 16): with 64, one per
    charge in flight as the bench had, each process waited more for its interpreter lock (docs/performance.md, "Ledger threads in a charge run")."""
    return Settings(
        database_url=database_url, jwt_secret="bench" * 8, clock="test", clock_start=START,
        charge_concurrency=CAP, gateway_retry_base_seconds=0.05, sandbox_url=sandbox_url,
        charge_processes=processes,
    )


async def _issue_card(gateway: PaymentGateway) -> BillingKey:
    """The bench's one billing key; the gateway's pool is closed on the loop that opened it."""
    try:
        return await gateway.issue_billing_key("test_card_4300000000000001", "bench")
    finally:
        await gateway.aclose()


def setup(database_url: str, sandbox_url: str, count: int) -> None:
    built = build(bench_settings(database_url, sandbox_url))
    try:
        card = asyncio.run(_issue_card(built.gateways["SANDBOX"]))
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


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # children that have ended
    return usage.ru_utime + usage.ru_stime


async def _charge(database_url: str, sandbox_url: str, processes: int) -> dict[str, float]:
    """The worker's side: one run of the charge job at the trial-end day's 00:00."""
    from workers.subscription_jobs import charge_due_subscriptions

    built = build(bench_settings(database_url, sandbox_url, processes))
    due_at = datetime(2026, 3, 7, 15, 0, tzinfo=timezone.utc)  # 2026-03-08 00:00 in Seoul
    built.clock.advance_to(due_at)
    began, cpu, children = time.perf_counter(), time.process_time(), _children_cpu_s()
    counts = await charge_due_subscriptions(built.jobs.ctx, due_at)
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu + _children_cpu_s() - children  # the shard processes have ended
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    built.catch_up()
    table = built.services.payments.table  # the payments read model's live table
    with built.view_db.transaction(readonly=True) as cursor:
        row = cursor.execute(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS won FROM {table} WHERE status = 'SUCCEEDED'"
        ).fetchone()
    await built.aclose()  # the gateway's connection pool too, on the loop that opened it
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": max(peak_rss_mb(), round(children_rss, 1)), "ledger_done": int(row["n"]),
            "ledger_won": int(row["won"]), **counts}


def run(database_url: str, count: int = 100_000, processes: int = 2) -> None:
    workdir = make_workdir("subledger-bench-renewals-")
    deployment = Deployment(workdir, {**os.environ})
    try:
        sandbox = deployment.sandbox()
        httpx.post(f"{sandbox.url}/sandbox/faults", json={"latencyMs": LATENCY_MS, "maxConcurrency": CAP},
                   timeout=10, verify=client_ssl_context()).raise_for_status()
        started = time.perf_counter()
        setup(database_url, sandbox.url, count)
        setup_s = time.perf_counter() - started
        gateway_cpu = CpuMeter({"sandbox": lambda: [sandbox.popen.pid]})
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.renewals", database_url, sandbox.url, str(processes)],
            capture_output=True, text=True, check=True, env={**os.environ},
        )
        sandbox_cpu = gateway_cpu.read()["sandbox"]
        charges = httpx.get(f"{sandbox.url}/sandbox/charges", timeout=60, verify=client_ssl_context()).json()["charges"]
    finally:
        deployment.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    floor = count * LATENCY_MS / 1000 / CAP
    emit(
        "renewals",
        subscriptions=count,
        processes=processes,
        latency_ms=LATENCY_MS,
        concurrency_cap=CAP,
        wall_s=round(figures["wall_s"], 2),
        floor_s=round(floor, 2),
        ratio=round(figures["wall_s"] / floor, 3),
        target_ratio=1.25,
        charged_at_gateway=len(charges),
        won_at_gateway=sum(int(c["amount"]) for c in charges),
        done_in_ledger=figures["ledger_done"],
        won_in_ledger=figures["ledger_won"],
        succeeded=figures["succeeded"],
        failed=figures["failed"],
        worker_peak_rss_mb=figures["rss_mb"],
        worker_cpu_ms_per_charge=round(figures["cpu_s"] * 1000 / count, 3),
        gateway_cpu_ms_per_charge=round(sandbox_cpu * 1000 / count, 3),
        setup_s=round(setup_s, 1),
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_charge(sys.argv[1], sys.argv[2], int(sys.argv[3])))))
