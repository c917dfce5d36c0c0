"""Settling payments left PENDING (SPEC §5): a crash between the gateway call and
the settlement, or an outcome nobody saw. The job asks the gateway for the
order's outcome before anything else in the 00:00 run; it never charges again."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.payment import PENDING
from workers.fanout import for_each

#: A PENDING payment younger than this may still be in its own request.
STALE_AFTER = timedelta(minutes=1)


async def settle_stale_payments(ctx: Any, now: datetime) -> dict[str, int]:
    await ctx.run_sync(ctx.catch_up)
    stale = await ctx.run_sync(ctx.payments.pending_payment_ids, now - STALE_AFTER)

    async def settle(payment_id: Any) -> bool:
        payment = await ctx.run_sync(ctx.ledger.payment, payment_id)
        if payment is None or payment.status != PENDING:
            return False
        settled = await ctx.billing.settle_stale(payment, now)
        return settled.status != PENDING

    return await for_each(stale, settle, concurrency=ctx.concurrency, label="settle_stale_payments", total=len(stale))
