"""Delivering the notifications outbox (SPEC §7): a sender interface, the logging
sender used by default, and the job that sends what is unsent.

Each notification is claimed (its delivery row inserted) before it is sent, so
two dispatchers never send it twice; a send that fails gives the claim back and a
later run tries again. Delivery is therefore at most once per claim, and every
notification is eventually sent once.
"""
from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime
from typing import Any, Protocol

import structlog

log = structlog.get_logger("subledger.notifications")

BATCH = 200


class NotificationSender(Protocol):
    async def send(self, notification: dict[str, Any]) -> None:
        """Deliver one notification; raise to have it retried later."""


class LoggingSender:
    """Writes each notification to the log (the default; SMTP comes with its configuration).
    Keeps the ids it sent recently, for operators and tests to inspect."""

    def __init__(self, remember: int = 10_000) -> None:
        self.sent: deque[str] = deque(maxlen=remember)

    async def send(self, notification: dict[str, Any]) -> None:
        # No contact details here: the log is not a place for personal data.
        log.info(
            "notification_sent",
            id=notification["id"],
            user_id=notification["user_id"],
            kind=notification["kind"],
            subject=notification["subject"],
        )
        self.sent.append(notification["id"])


async def deliver_pending(ctx: Any, now: datetime) -> dict[str, int]:
    """Send every unsent notification the outbox holds now."""
    counts = {"processed": 0, "succeeded": 0, "failed": 0}
    while True:
        batch = await ctx.run_sync(ctx.notifications.unsent, BATCH)
        progressed = False
        for notification in batch:
            counts["processed"] += 1
            if not await ctx.run_sync(ctx.notifications.claim, notification["id"], now):
                continue  # another dispatcher has it
            progressed = True
            try:
                await ctx.sender.send(notification)
            except Exception:
                counts["failed"] += 1
                log.exception("notification_send_failed", id=notification["id"], kind=notification["kind"])
                await ctx.run_sync(ctx.notifications.unclaim, notification["id"])
                continue
            counts["succeeded"] += 1
        if len(batch) < BATCH or not progressed:
            return counts


async def send_notifications(ctx: Any, now: datetime) -> dict[str, int]:
    """The scheduled job: bring the outbox up to the ledger's head, then send."""
    await ctx.run_sync(ctx.catch_up)
    return await deliver_pending(ctx, now)


async def follow_outbox(ctx: Any, clock: Any, interval: float = 2.0) -> None:
    """Inside `subledger serve`: send new notifications within seconds, not at the next run."""
    while True:
        try:
            await deliver_pending(ctx, clock.now())
        except Exception:  # a failed pass must not stop the next ones
            log.exception("outbox_pass_failed")
        await asyncio.sleep(interval)
