"""Delivering the notifications outbox (SPEC §7, docs/email.md): the job that sends
what is unsent, and the three ways it can go, chosen from the settings by `sender_for`:

- `SmtpSender`: SUBLEDGER_SMTP_HOST is set. Each notification is claimed (one
  sender per attempt), its address read from the user's sealed contact details,
  and handed to the server; `sent_at` is recorded only from the server's 250.
  Refusals and unreachable servers are retried with backoff up to
  SUBLEDGER_SMTP_MAX_ATTEMPTS; a message whose handing-over was cut short is
  UNCONFIRMED and never sent again (at most once: see
  projections/notification_deliveries.py).
- `LogOnlySender`: development without SMTP. The message goes to the log with
  `emailed=false` and is recorded LOGGED; `sent_at` stays empty.
- `WithheldSender`: production without SMTP. Nothing is sent or marked: the
  notifications stay PENDING (visible in `notifications`) until SMTP is set, and
  the first pass of every process says so in the log.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from projections.notification_deliveries import DeliveryState, NotificationDeliveries, without_addresses
from workers.smtp_client import (
    DEFAULT_PORTS, HandedOver, NotHandedOver, ServerUnusable, SmtpConfig, SmtpConnection, TlsMode, build_message,
)

log = structlog.get_logger("subledger.notifications")

BATCH = 200
NOT_EMAILED = "SMTP is not configured (SUBLEDGER_SMTP_HOST): logged, not emailed"


def wall_now() -> datetime:
    """Retries are paced by real time, whatever the product's (test) clock says."""
    return datetime.now(timezone.utc)


def _counts() -> dict[str, int]:
    return {"processed": 0, "succeeded": 0, "failed": 0}


class WithheldSender:
    """Production without SMTP: refuse to pretend. Nothing is marked; all stays PENDING."""

    def __init__(self) -> None:
        self._told = False

    async def run_pass(self, ctx: Any, now: datetime) -> dict[str, int]:
        if not self._told:
            self._told = True
            log.warning("notifications_withheld", reason="production without SUBLEDGER_SMTP_HOST: notifications stay"
                        " unsent (PENDING) until SMTP is configured")
        return _counts()


class LogOnlySender:
    """Development without SMTP: each notification is written to the log, once, and recorded LOGGED."""

    def __init__(self, deliveries: NotificationDeliveries) -> None:
        self.deliveries = deliveries

    async def run_pass(self, ctx: Any, now: datetime) -> dict[str, int]:
        counts = _counts()
        while True:
            batch = await ctx.run_sync(ctx.notifications.unsent, BATCH)
            # One transaction for the batch, not one per notification: a backlog (a restored
            # or rebuilt outbox) is logged at the speed of the log, not of the database's commits.
            recorded = set(await ctx.run_sync(self.deliveries.record_logged, [n["id"] for n in batch], wall_now()))
            counts["processed"] += len(batch)
            counts["succeeded"] += len(recorded)
            for notification in batch:
                if notification["id"] not in recorded:
                    continue  # another process logged it
                # No contact details: the log is not a place for personal data (the text holds none).
                log.info("notification_logged", emailed=False, reason=NOT_EMAILED, id=notification["id"],
                         user_id=notification["user_id"], kind=notification["kind"], subject=notification["subject"],
                         body=notification["body"])
            if len(batch) < BATCH or not recorded:
                return counts


class SmtpSender:
    def __init__(self, config: SmtpConfig, deliveries: NotificationDeliveries, clock: Any) -> None:
        self.config = config
        self.deliveries = deliveries
        #: The product's clock: `sent_at` is its time when the server's 250 came back.
        self.clock = clock
        #: After the server could not be reached, no pass connects again before this (wall clock).
        self._resting_until: datetime | None = None
        self._outages = 0
        self._lock = asyncio.Lock()

    async def run_pass(self, ctx: Any, now: datetime) -> dict[str, int]:
        async with self._lock:  # one pass at a time per process: the scheduled run and the follower may meet
            counts = _counts()
            wall = wall_now()
            if self._resting_until is not None and wall < self._resting_until:
                return counts
            self._resting_until = None
            await ctx.run_sync(self.deliveries.release_stale, wall)
            connection = SmtpConnection(self.config)
            tried: set[str] = set()
            try:
                while True:
                    batch = await ctx.run_sync(ctx.notifications.unsent, BATCH)
                    batch += await ctx.run_sync(ctx.notifications.retry_due, wall_now(), BATCH)
                    batch = [n for n in batch if n["id"] not in tried]
                    for notification in batch:
                        tried.add(notification["id"])
                        counts["processed"] += 1
                        outcome = await self._deliver(ctx, connection, notification)
                        if outcome is DeliveryState.SENT:
                            counts["succeeded"] += 1
                        elif outcome in (DeliveryState.RETRYING, DeliveryState.FAILED, DeliveryState.UNCONFIRMED):
                            counts["failed"] += 1
                        if self._resting_until is not None:
                            return counts
                    if not batch:
                        return counts
            finally:
                await connection.close()

    async def _deliver(self, ctx: Any, connection: SmtpConnection, notification: dict[str, Any]) -> DeliveryState | None:
        """One attempt at one notification; its new state, or None when another sender had it."""
        nid = notification["id"]
        attempt = notification["delivery_attempts"] + 1
        if not await ctx.run_sync(self.deliveries.claim, nid, notification["delivery_attempts"], wall_now()):
            return None
        recipient, why_not = await ctx.run_sync(recipient_of, ctx.ledger, notification["user_id"])
        if recipient is None:
            await ctx.run_sync(self.deliveries.skip, nid, why_not)
            log.info("notification_skipped", id=nid, user_id=notification["user_id"], kind=notification["kind"], reason=why_not)
            return DeliveryState.SKIPPED
        message = build_message(self.config, notification, recipient, wall_now())
        try:
            reply = await connection.send(message, recipient, lambda: ctx.run_sync(self.deliveries.handing_over, nid))
        except HandedOver as lost:
            await ctx.run_sync(self.deliveries.unconfirmed, nid, str(lost))
            log.error("notification_unconfirmed", id=nid, kind=notification["kind"], attempt=attempt,
                      error=without_addresses(str(lost)), note="the server may have it: not sent again")
            return DeliveryState.UNCONFIRMED
        except NotHandedOver as refused:
            return await self._failed(ctx, notification, attempt, refused)
        await ctx.run_sync(self.deliveries.sent, nid, await ctx.run_sync(self.clock.now))
        self._outages = 0
        log.info("notification_sent", id=nid, user_id=notification["user_id"], kind=notification["kind"],
                 attempt=attempt, reply=without_addresses(reply))
        return DeliveryState.SENT

    async def _failed(self, ctx: Any, notification: dict[str, Any], attempt: int, error: NotHandedOver) -> DeliveryState:
        wall = wall_now()
        retry_in = self.config.backoff(attempt)
        state = await ctx.run_sync(self.deliveries.failed_attempt, notification["id"], attempt, str(error), retry_in, wall)
        if isinstance(error, ServerUnusable):
            self._outages += 1
            self._resting_until = wall + self.config.backoff(self._outages)
        else:
            self._resting_until = None
        log.warning("notification_send_failed", id=notification["id"], kind=notification["kind"], attempt=attempt,
                    max_attempts=self.config.max_attempts, state=state.value, error=without_addresses(str(error)),
                    retry_in_s=retry_in.total_seconds() if state is DeliveryState.RETRYING else None,
                    server_unreachable=isinstance(error, ServerUnusable))
        return state


def recipient_of(ledger: Any, user_id: str) -> tuple[str | None, str]:
    """The user's e-mail address from their sealed contact details, or (None, why there is none)."""
    customer = ledger.customer(user_id)
    if customer is not None and customer.erased_at is not None:
        return None, "the user's personal data was erased"
    if customer is None or not customer.email:
        return None, "no e-mail address on record"
    if not is_mailbox(customer.email):
        return None, "the address on record is not a usable e-mail address"
    return customer.email, ""


def is_mailbox(address: str) -> bool:
    """A bare addr-spec with no space or control character (the token's claim is only length-checked):
    nothing that could end an SMTP command or a header line early."""
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and "." in domain and all(c.isprintable() and not c.isspace() for c in address) \
        and not any(c in address for c in "<>,;\"()[]")


async def deliver_pending(ctx: Any, now: datetime) -> dict[str, int]:
    """Send what the outbox holds now, as the configured sender does (`ctx.sender`)."""
    return await ctx.sender.run_pass(ctx, now)


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


def smtp_config(settings: Any) -> SmtpConfig | None:
    """The SMTP settings (SUBLEDGER_SMTP_*, validated by Settings) as one value; None without a host."""
    if not settings.smtp_host:
        return None
    tls = TlsMode(settings.smtp_tls)
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port or DEFAULT_PORTS[tls],
        tls=tls,
        from_address=settings.smtp_from,
        timeout=settings.smtp_timeout,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        ca_file=settings.smtp_ca_file,
        max_attempts=settings.smtp_max_attempts,
        retry_base=timedelta(seconds=settings.smtp_retry_base_seconds),
    )


def sender_for(settings: Any, view_db: Any, clock: Any) -> WithheldSender | LogOnlySender | SmtpSender:
    """The sender the settings call for (see the module's docstring)."""
    config = smtp_config(settings)
    if config is not None:
        return SmtpSender(config, NotificationDeliveries(view_db, config.max_attempts, config.lease), clock)
    return WithheldSender() if settings.env == "production" else LogOnlySender(NotificationDeliveries(view_db))
