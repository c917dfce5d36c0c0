"""The subscription jobs of the daily runs (SPEC §3, §6).

Each finds its candidates in the subscriptions read model (indexed, no event
scan), then issues one ledger command per candidate; the command re-checks the
subscription on the ledger, so a job is idempotent for a given `now`: run twice,
the second run finds nothing left to do.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog

from workers.charge_processes import WHOLE, Shard, shards_for
from workers.fanout import for_each

log = structlog.get_logger("subledger.jobs")

#: Outcomes of `SubscriptionBilling.charge_due` that count as done / as failed attempts.
DONE = frozenset({"succeeded", "renewed"})
DECLINED = frozenset({"failed"})


async def _each(ctx: Any, ids: list[str], action: Any, label: str) -> dict[str, int]:
    return await for_each(ids, action, concurrency=ctx.concurrency, label=label, total=len(ids))


async def finish_cancellations(ctx: Any, now: datetime) -> dict[str, int]:
    """CANCELING subscriptions whose period has ended → CANCELED (00:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    ids = await ctx.run_sync(ctx.subscriptions.cancellations_ended, now)
    return await _each(ctx, ids, lambda i: ctx.run_sync(ctx.ledger.subscriptions.finish_cancellation, i, now), "finish_cancellations")


async def expire_trials(ctx: Any, now: datetime) -> dict[str, int]:
    """Trials ending today without a usable payment method → EXPIRED (00:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    ids = await ctx.run_sync(ctx.subscriptions.trials_ending, now, ctx.ledger.tz)
    return await _each(ctx, ids, lambda i: ctx.run_sync(ctx.ledger.subscriptions.expire_trial, i, now), "expire_trials")


#: Due subscriptions read per page by the charge run.
DUE_PAGE = 1000


async def _due(ctx: Any, now: datetime, shard: Shard) -> AsyncIterator[str]:
    """The charge run's candidates in `shard`, page by page as charging slots free up:
    100,000 renewals on the first of a month never sit in memory at once. The keyset is
    (next_charge_at, id); a charged subscription's next charge moves past today and leaves
    the query, so a page never repeats one. One whose due date is set earlier than the
    keyset after the run started waits for the next run, as the due rule charges anything
    dated today or before. Every shard reads every page and keeps its own ids."""
    after = None
    while True:
        page = await ctx.run_sync(ctx.subscriptions.due_for_charge_page, now, ctx.ledger.tz, after, DUE_PAGE)
        for _, subscription_id in page:
            if shard.owns(subscription_id):
                yield subscription_id
        if len(page) < DUE_PAGE:
            return
        after = page[-1]


async def charge_shard(ctx: Any, now: datetime, shard: Shard, concurrency: int, total: int | None = None) -> dict[str, int]:
    """Charge what is due in `shard` (the read models already caught up by the caller).
    `failed` counts declined attempts as well as errors."""
    declined = 0

    async def charge(subscription_id: str) -> bool:
        nonlocal declined
        outcome = await ctx.subscription_billing.charge_due(subscription_id, now)
        declined += outcome in DECLINED
        if outcome != "skipped":
            log.info("subscription_charge", subscription_id=str(subscription_id), outcome=outcome, run=now.isoformat())
        return outcome in DONE

    counts = await for_each(_due(ctx, now, shard), charge, concurrency=concurrency, label="charge_due_subscriptions", total=total)
    counts = {**counts, "failed": counts["failed"] + declined}
    if shard.count > 1:
        log.info("charge_shard_finished", shard=str(shard), pid=os.getpid(), **counts)
    return counts


async def charge_due_subscriptions(ctx: Any, now: datetime) -> dict[str, int]:
    """Renewals, trial ends, dunning retries and free renewals due today (00:00 run).
    `failed` counts declined attempts as well as errors. With several charge processes
    (workers/charge_processes.py) and enough due, this process charges the first shard
    and other processes the rest; the counts are theirs added up."""
    await ctx.run_sync(ctx.catch_up)
    total = await ctx.run_sync(ctx.subscriptions.count_due_for_charge, now, ctx.ledger.tz)
    count = shards_for(ctx.charge_processes.processes, total) if ctx.charge_processes is not None else 1
    if count == 1:
        return await charge_shard(ctx, now, WHOLE, ctx.concurrency, total)
    share = max(1, ctx.concurrency // count)
    shards = [Shard(index, count) for index in range(count)]
    log.info("charge_run_split", shards=count, due=total, concurrency_per_shard=share)
    # Both sides run to their end before the run moves on, even when one of them fails.
    mine, theirs = await asyncio.gather(
        charge_shard(ctx, now, shards[0], share, total // count),
        ctx.charge_processes.run(now, shards[1:], share),
        return_exceptions=True,
    )
    for outcome in (mine, theirs):
        if isinstance(outcome, BaseException):
            raise outcome
    results = [mine, *theirs]
    return {key: sum(result[key] for result in results) for key in results[0]}


async def subscription_reminders(ctx: Any, now: datetime) -> dict[str, int]:
    """RENEWAL_REMINDER and TRIAL_ENDING notifications owed today (09:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    ids = await ctx.run_sync(ctx.subscriptions.reminder_candidates, now, ctx.ledger.tz)
    return await _each(ctx, ids, lambda i: ctx.run_sync(ctx.ledger.subscriptions.remind_subscription, i, now), "subscription_reminders")
