"""`subledger bench history`: spend latency on a wallet with a long history (default
100,000 events) against a fresh wallet, in the same run (docs/performance.md: ≤ 2×, which
snapshots make possible)."""
from __future__ import annotations

import statistics
import time
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from rich.progress import Progress

from benchmarks.common import emit
from domain.catalog import default_catalog
from domain.ledger import Ledger
from domain.wallet import Wallet
from subledger.storage import Database

CHUNK = 1000


def grow(ledger: Ledger, user: str, events: int, now: datetime) -> None:
    """Give `user` a wallet with `events` events, saved in chunks (snapshots taken as in production)."""
    wallet = Wallet(user_id=user, at=now)
    wallet.credit(type="ADJUSTMENT", amount=10 * events + 100_000, at=now, description="bench", expires_at=None)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"writing {events:,} events", total=events)
        while True:
            for _ in range(min(CHUNK, events - wallet.version)):
                wallet.debit(type="USAGE", amount=1, at=now, description="bench", service_id=uuid.uuid4().hex)
            ledger.save(wallet)
            progress.update(task, completed=wallet.version)
            if wallet.version >= events:
                return


def spend_latencies(ledger: Ledger, user: str, count: int, now: datetime) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        ledger.wallets.spend_points(user, service=None, amount=1, service_id=uuid.uuid4().hex, now=now)
        latencies.append(time.perf_counter() - began)
    return latencies


def run(database_url: str, events: int = 100_000, spends: int = 200) -> None:
    db = Database.from_url(database_url)
    env = db.ledger_env(pool_size=4)
    env["AGGREGATE_CACHE_MAXSIZE"] = "20000"
    ledger = Ledger(env=env, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"))
    now = datetime.now(timezone.utc)
    big, fresh = f"bench-big-{uuid.uuid4().hex[:8]}", f"bench-fresh-{uuid.uuid4().hex[:8]}"
    grow(ledger, big, events, now)
    grow(ledger, fresh, 2, now)
    # A new process: nothing cached, so the first loads go through snapshots.
    ledger.close()
    ledger = Ledger(env=env, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"))
    try:
        fresh_ms = statistics.median(spend_latencies(ledger, fresh, spends, now)) * 1000
        cold_big = spend_latencies(ledger, big, 1, now)[0] * 1000
        big_ms = statistics.median(spend_latencies(ledger, big, spends, now)) * 1000
    finally:
        ledger.close()
    emit(
        "history",
        database=db.kind,
        events=events,
        fresh_wallet_median_ms=round(fresh_ms, 3),
        long_wallet_median_ms=round(big_ms, 3),
        long_wallet_first_spend_ms=round(cold_big, 3),
        ratio=round(big_ms / fresh_ms, 3),
        target_ratio=2.0,
    )
