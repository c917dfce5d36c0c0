"""`subledger bench rebuild`: events/s rebuilding every read model from position 0,
against decoding the same notifications without applying them (docs/performance.md;
target ≥ 50%), all measured in the same run on the same ledger.

The baseline decodes with eventsourcing's plain `Mapper` (the same transcoder,
compressor and cipher as the ledger's), so the cost of this project's own
mapper (sealed personal fields, their keys) counts against the rebuild rather
than hiding in the baseline; `mapper_ratio` is that mapper's decode speed
against the plain one (target ≥ 0.8).

The ledger is filled through the domain's own aggregates (customers with a
card, point purchases, spends, rewards, refunds), many users per save, so a
million realistic events take minutes to write rather than hours of commands.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from eventsourcing.persistence import Mapper

from benchmarks.common import emit, peak_rss_mb
from domain.customer import Customer
from domain.payments.payment import Payment
from domain.purchase_commands import purchase_lot_id
from domain.wallet import LOT_LIFETIME, Wallet

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
#: Wallet events per user, below the wallet's snapshot interval so filling stays one pass.
SPENDS_PER_USER = 30
USERS_PER_SAVE = 40


def _user_history(n: int, tag: str, rng: random.Random) -> list[Any]:
    """One user's aggregates with their pending events: a customer with a card, a paid
    points purchase credited as a lot, rewards and spends, and now and then a refund."""
    user = f"bench-{tag}-{n}"
    now = START + timedelta(minutes=n)
    customer = Customer(user_id=user, at=now)
    customer.add_payment_method(f"pm_bench_{tag}_{n}", "SANDBOX", f"bk-{n}", f"cust-{n}", "4300********0001", now)
    wallet = Wallet(user_id=user, at=now)
    payment = Payment(
        order_id=f"pts-{tag}-{n}", order_name="5,500 points (regular)", user_id=user, provider="SANDBOX", kind="POINTS",
        amount=5000, payment_method_id=f"pm_bench_{tag}_{n}", subscription_id=None, attempt=1,
        purpose={"type": "points", "package_id": "regular", "points": 5000, "bonus": 500}, at=now,
    )
    wallet.await_purchase(str(payment.id), 5500, now)
    payment.succeed(f"pk-{n}", now, now)
    wallet.credit(
        type="PURCHASE", amount=5500, at=now, description=payment.order_name, expires_at=now + LOT_LIFETIME,
        reference_type="payment", reference_id=str(payment.id), lot_id=purchase_lot_id(payment),
    )
    for i in range(SPENDS_PER_USER):
        now += timedelta(hours=rng.randint(1, 30))
        if i % 5 == 0:
            wallet.credit(type="REWARD", amount=20, at=now, description="reward: community_post", expires_at=now + LOT_LIFETIME,
                          reference_type="activity", reference_id="community_post")
        else:
            amount = min(rng.randint(10, 200), wallet.usable_balance(now))
            if amount > 0:
                wallet.debit(type="USAGE", amount=amount, at=now, description="spent", reference_type="amount", reference_id=f"s-{i}")
    if n % 10 == 0:
        refund = payment.request_refund(100, "goodwill", now)
        payment.settle_refund(refund.id, True, now)
    return [customer, wallet, payment]


def populate(ledger: Any, events: int, tag: str | None = None, seed: int = 7) -> int:
    """Write at least `events` events (a few more, to finish the last save); returns how many."""
    tag = tag or uuid.uuid4().hex[:8]
    rng = random.Random(seed)
    written = n = 0
    while written < events:
        batch: list[Any] = []
        for _ in range(USERS_PER_SAVE):
            batch.extend(_user_history(n, tag, rng))
            n += 1
            if written + sum(len(a.pending_events) for a in batch) >= events:
                break
        written += sum(len(a.pending_events) for a in batch)
        ledger.save(*batch)
    return written


def decode_all(ledger: Any, batch_size: int, decode: Callable[[list[Any]], Any]) -> int:
    """Read every notification and decode each batch with `decode`, applying nothing."""
    head = ledger.recorder.max_notification_id() or 0
    position = decoded = 0
    while position < head:
        notifications = ledger.recorder.select_notifications(
            start=position, limit=batch_size, stop=head, inclusive_of_start=False
        )
        if not notifications:
            break
        decode(notifications)
        decoded += len(notifications)
        position = notifications[-1].id
    return decoded


def run(built: Any, events: int, reuse: bool = False) -> dict[str, Any]:
    ledger = built.ledger
    existing = ledger.recorder.max_notification_id() or 0
    if existing < events and not reuse:
        began = time.perf_counter()
        populate(ledger, events - existing)
        fill_seconds = time.perf_counter() - began
    else:
        fill_seconds = 0.0
    total = ledger.recorder.max_notification_id() or 0
    batch = built.read_models.batch_size

    mine = ledger.mapper
    plain = Mapper(transcoder=mine.transcoder, compressor=mine.compressor, cipher=mine.cipher)
    # One pass that only reads, first: the first read of freshly written rows costs more
    # (PostgreSQL sets their hint bits; SQLite finds them in its WAL), and would otherwise
    # fall on whichever pass came first, the baseline.
    began = time.perf_counter()
    decode_all(ledger, batch, lambda notifications: None)
    read_seconds = time.perf_counter() - began
    began = time.perf_counter()
    decoded = decode_all(ledger, batch, lambda notifications: [plain.to_domain_event(n) for n in notifications])
    decode_seconds = time.perf_counter() - began
    began = time.perf_counter()
    decode_all(ledger, batch, mine.to_domain_events)
    mapper_seconds = time.perf_counter() - began

    began = time.perf_counter()
    built.read_models.rebuild(None, wait_for_drop=False)
    rebuild_seconds = time.perf_counter() - began
    built.read_models.rebuilder.close()
    built.read_models.rebuilder.drop_retired(0)

    decode_rate = decoded / decode_seconds
    mapper_rate = decoded / mapper_seconds
    rebuild_rate = total / rebuild_seconds
    figures = {
        "database": built.view_db.kind,
        "events": total,
        "projections": len(built.runners),
        "rebuild_events_per_s": round(rebuild_rate),
        "plain_decode_events_per_s": round(decode_rate),
        "ratio": round(rebuild_rate / decode_rate, 3),
        "mapper_decode_events_per_s": round(mapper_rate),
        "mapper_ratio": round(mapper_rate / decode_rate, 3),
        "rebuild_seconds": round(rebuild_seconds, 2),
        "read_seconds": round(read_seconds, 2),
        "plain_decode_seconds": round(decode_seconds, 2),
        "mapper_decode_seconds": round(mapper_seconds, 2),
        "fill_seconds": round(fill_seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    emit("rebuild", **figures)
    return figures
