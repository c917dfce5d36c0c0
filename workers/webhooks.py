"""Sending webhooks (docs/webhooks.md): fan events out to endpoints, claim what is due, POST it
signed, record the attempt, schedule the retry.

One pass is a function of `now` (the service clock): the in-process loop of
`subledger serve` runs a pass every SUBLEDGER_WEBHOOK_POLL_SECONDS, the arq
worker every few seconds, and the daily runs once more; any number of them
may run at once, since a delivery is claimed with a lease before it is sent.
"""
from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import structlog

from domain.errors import NotFound
from domain.webhooks import (
    EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, DeliveryStatus, RetryPolicy, signature_header,
)
from gateways.tls import client_ssl_context
from projections.webhook_deliveries import Attempt, Delivery, body_of
from workers.fanout import for_each

log = structlog.get_logger("subledger.webhooks")

FAN_OUT_BATCH = 500
CLAIM_BATCH = 100
#: Characters of an error kept with an attempt.
MAX_ERROR_CHARS = 300
USER_AGENT = "subledger-webhooks/1"


class WebhookDispatcher:
    def __init__(
        self,
        endpoints: Any,  # subledger.webhook_endpoints.WebhookEndpoints
        deliveries: Any,  # projections.webhook_deliveries.WebhookDeliveries
        events_after: Callable[[int, int], list[dict[str, Any]]],  # the webhook events projection's `after`
        run_sync: Callable[..., Awaitable[Any]],
        *,
        policy: RetryPolicy,
        timeout: float,
        concurrency: int = 16,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.events_after = events_after
        self.run_sync = run_sync
        self.policy = policy
        self.timeout = timeout
        self.concurrency = concurrency
        self.jitter = jitter
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # The lease outlives the request's timeout by a margin: nobody else sends it meanwhile.
        self.lease_ms = int((timeout * 2 + 30) * 1000)
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx is not a receipt (the endpoint must give its final URL).
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, verify=client_ssl_context(),
                                             headers={"User-Agent": USER_AGENT})
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ a pass
    async def run(self, now: datetime) -> dict[str, int]:
        """Fan out new events, then send every delivery due at `now`."""
        await self.run_sync(self.fan_out, now)
        counts = {"processed": 0, "succeeded": 0, "failed": 0}
        while True:
            batch = await self.run_sync(
                self.deliveries.claim_due, now, self.owner, int(time.time() * 1000), self.lease_ms, CLAIM_BATCH
            )
            if not batch:
                return counts
            done = await for_each(batch, lambda d: self.attempt(d, now), concurrency=self.concurrency,
                                  label="deliver_webhooks")
            for key in counts:
                counts[key] += done[key]
            if len(batch) < CLAIM_BATCH:
                return counts

    def fan_out(self, now: datetime) -> int:
        added = 0
        for endpoint in self.endpoints.all():
            while True:
                events = self.events_after(endpoint.position, FAN_OUT_BATCH)
                if not events:
                    break
                added += self.deliveries.fan_out(endpoint, events, now)
                endpoint = self.endpoints.get(endpoint.id)
                if len(events) < FAN_OUT_BATCH:
                    break
        return added

    async def attempt(self, delivery: Delivery, now: datetime) -> bool:
        """One POST of `delivery`; True when the endpoint answered 2xx."""
        try:
            endpoint = await self.run_sync(self.endpoints.get, delivery.endpoint_id)
        except NotFound:
            return False  # deleted meanwhile, with its deliveries
        code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            secret = await self.run_sync(self.endpoints.secret, delivery.endpoint_id)
        except Exception as failure:  # e.g. wrapped by a master key this process was not given
            secret = None
            error = f"the signing secret cannot be unsealed ({type(failure).__name__}); nothing was sent"
            log.error("webhook_secret_unreadable", endpoint_id=endpoint.id, error=type(failure).__name__)
        if secret is not None:
            code, error = await self._post(endpoint.url, secret, delivery)
        duration_ms = int((time.monotonic() - started) * 1000)
        number = delivery.attempts + 1
        if error is None:
            status, retry_at = DeliveryStatus.SUCCEEDED, None
        else:
            retry_at = self.policy.after_failure(delivery.window_start, now, number, self.jitter())
            status = DeliveryStatus.PENDING if retry_at else DeliveryStatus.FAILED
        recorded = await self.run_sync(
            self.deliveries.record, delivery, self.owner, Attempt(number, now, code, error, duration_ms), status, retry_at
        )
        # The URL and ids only: never the secret, the signature or the body.
        log.info("webhook_attempt", delivery_id=delivery.id, event_id=delivery.event_id, endpoint_id=endpoint.id,
                 attempt=number, response_code=code, error=error, duration_ms=duration_ms, status=status.value,
                 retry_at=retry_at.isoformat() if retry_at else None, recorded=recorded)
        return error is None


    async def _post(self, url: str, secret: str, delivery: Delivery) -> tuple[int | None, str | None]:
        """POST the delivery's body, signed now; (status code, error or None for a 2xx)."""
        body = body_of(delivery)
        stamp = int(time.time())  # the receiver checks it against its own wall clock
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, stamp, body),
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
        }
        try:
            # Streamed and closed unread: only the status counts, and a huge answer costs nothing.
            async with self.client().stream("POST", url, content=body, headers=headers) as response:
                code = response.status_code
        except httpx.TimeoutException:
            return None, f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as failure:
            return None, f"{type(failure).__name__}: {failure}"[:MAX_ERROR_CHARS]
        return code, None if 200 <= code < 300 else f"HTTP {code}"


async def follow_webhooks(dispatcher: WebhookDispatcher, clock: Any, interval: float) -> None:
    """Inside `subledger serve`: a pass every `interval` seconds."""
    while True:
        try:
            await dispatcher.run(clock.now())
        except Exception:  # a failed pass must not stop the next ones
            log.exception("webhook_pass_failed")
        await asyncio.sleep(interval)


async def deliver_webhooks(ctx: Any, now: datetime) -> dict[str, int]:
    """The scheduled job: bring the read models up to the ledger's head, then a pass."""
    if ctx.webhooks is None:
        return {"processed": 0, "succeeded": 0, "failed": 0}
    await ctx.run_sync(ctx.catch_up)
    return await ctx.webhooks.run(now)
