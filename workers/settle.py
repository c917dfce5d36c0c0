"""Settling money left PENDING (SPEC §5): a crash between the gateway call and
the settlement, or an outcome nobody saw. The job asks the gateway for the
order's outcome before anything else in the 00:00 run; it never charges again.
Refunds left PENDING are finished the same way: looked up in the payment's
cancellations, and re-sent under their own key only when the provider shows none."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from domain.payments.payment import PaymentStatus
from workers.fanout import for_each

#: A PENDING payment younger than this (by the clock of the run) is not looked at; one
#: recorded less than the settle grace ago by the wall clock is not looked up either.
STALE_AFTER = timedelta(minutes=1)


async def settle_stale_payments(ctx: Any, now: datetime) -> dict[str, int]:
    await ctx.run_sync(ctx.catch_up)
    charges = await ctx.run_sync(ctx.payments.pending_payment_ids, now - STALE_AFTER)
    refunds = await ctx.run_sync(ctx.payments.payments_with_pending_refunds, now - STALE_AFTER)
    stale = list(dict.fromkeys([*charges, *refunds]))

    # Wall clock, not the (possibly test) clock of `now`: what matters is whether the charge's
    # own request can still reach the provider, and that is measured in real seconds.
    recorded_by = datetime.now(timezone.utc) - ctx.settle_grace

    async def settle(payment_id: Any) -> bool:
        payment = await ctx.run_sync(ctx.ledger.payment, payment_id)
        if payment is None or not payment.unsettled:
            return False
        if payment.status == PaymentStatus.PENDING and payment.created_on > recorded_by:
            # Its own request may still be on its way: a lookup now could find no order and
            # fail a payment the provider is about to charge. A later run settles it.
            return False
        settled = await ctx.billing.settle_stale(payment, now)
        return not settled.unsettled

    return await for_each(stale, settle, concurrency=ctx.concurrency, label="settle_stale_payments", total=len(stale))
