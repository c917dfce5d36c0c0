"""Settling money left PENDING (SPEC §5): a crash between the gateway call and
the settlement, or an outcome nobody saw. The job asks the gateway for the
order's outcome before anything else in the 00:00 run; it never charges again.
Refunds left PENDING are finished the same way: looked up in the payment's
cancellations, and re-sent under their own key only when the provider shows none."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workers.fanout import for_each

#: A PENDING payment younger than this may still be in its own request.
STALE_AFTER = timedelta(minutes=1)


async def settle_stale_payments(ctx: Any, now: datetime) -> dict[str, int]:
    await ctx.run_sync(ctx.catch_up)
    charges = await ctx.run_sync(ctx.payments.pending_payment_ids, now - STALE_AFTER)
    refunds = await ctx.run_sync(ctx.payments.payments_with_pending_refunds, now - STALE_AFTER)
    stale = list(dict.fromkeys([*charges, *refunds]))

    async def settle(payment_id: Any) -> bool:
        payment = await ctx.run_sync(ctx.ledger.payment, payment_id)
        if payment is None or not payment.unsettled:
            return False
        settled = await ctx.billing.settle_stale(payment, now)
        return not settled.unsettled

    return await for_each(stale, settle, concurrency=ctx.concurrency, label="settle_stale_payments", total=len(stale))
