"""The subscription jobs of the daily runs (SPEC §3, §6).

Each finds its candidates in the subscriptions read model (indexed, no event
scan), then issues one ledger command per candidate; the command re-checks the
subscription on the ledger, so a job is idempotent for a given `now`: run twice,
the second run finds nothing left to do.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog

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


async def _due(ctx: Any, now: datetime) -> AsyncIterator[str]:
    """The charge run's candidates, page by page as charging slots free up: 100,000 renewals
    on the first of a month never sit in memory at once. The keyset is (next_charge_at, id);
    a charged subscription's next charge moves past today and leaves the query, so a page
    never repeats one. One whose due date is set earlier than the keyset after the run
    started waits for the next run, as the due rule charges anything dated today or before."""
    after = None
    while True:
        page = await ctx.run_sync(ctx.subscriptions.due_for_charge_page, now, ctx.ledger.tz, after, DUE_PAGE)
        for _, subscription_id in page:
            yield subscription_id
        if len(page) < DUE_PAGE:
            return
        after = page[-1]


async def charge_due_subscriptions(ctx: Any, now: datetime) -> dict[str, int]:
    """Renewals, trial ends, dunning retries and free renewals due today (00:00 run).
    `failed` counts declined attempts as well as errors."""
    await ctx.run_sync(ctx.catch_up)
    total = await ctx.run_sync(ctx.subscriptions.count_due_for_charge, now, ctx.ledger.tz)
    declined = 0

    async def charge(subscription_id: str) -> bool:
        nonlocal declined
        outcome = await ctx.subscription_billing.charge_due(subscription_id, now)
        declined += outcome in DECLINED
        if outcome != "skipped":
            log.info("subscription_charge", subscription_id=str(subscription_id), outcome=outcome, run=now.isoformat())
        return outcome in DONE

    counts = await for_each(_due(ctx, now), charge, concurrency=ctx.concurrency, label="charge_due_subscriptions", total=total)
    return {**counts, "failed": counts["failed"] + declined}


async def subscription_reminders(ctx: Any, now: datetime) -> dict[str, int]:
    """RENEWAL_REMINDER and TRIAL_ENDING notifications owed today (09:00 run)."""
    await ctx.run_sync(ctx.catch_up)
    ids = await ctx.run_sync(ctx.subscriptions.reminder_candidates, now, ctx.ledger.tz)
    return await _each(ctx, ids, lambda i: ctx.run_sync(ctx.ledger.subscriptions.remind_subscription, i, now), "subscription_reminders")
