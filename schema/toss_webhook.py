"""`POST /webhooks/toss`: Toss Payments' payment notifications (its "웹훅").

Toss' webhook, as its docs describe it (https://docs.tosspayments.com/guides/webhook,
"웹훅 연동하기"; https://docs.tosspayments.com/reference/using-api/webhook-events,
"웹훅 이벤트"): a POST of JSON `{eventType, createdAt, data}`.
- `PAYMENT_STATUS_CHANGED`: `data` is the Payment object (paymentKey, orderId, status,
  totalAmount, cancels…), sent when a payment becomes DONE, ABORTED, EXPIRED, CANCELED or
  PARTIAL_CANCELED. A billing (automatic) charge approved at once sends none: Toss notifies
  its cancels, and charges that end later than their request.
- `CANCEL_STATUS_CHANGED`: `data` is a Cancel object; sent for overseas easy-pay cancels
  only, not for domestic cards. Handled like the other when it names a paymentKey,
  acknowledged and left alone otherwise.
- Payment notifications are not signed (`tosspayments-webhook-signature` is sent with
  payout.changed and seller.changed only), and Toss cannot send a bearer token. Headers
  `tosspayments-webhook-transmission-id` / `-retried-count` identify a delivery (logged).
- Toss counts only HTTP 200 as delivered; anything else is sent again up to 7 times
  (1, 4, 16, 64, 256, 1024, 4096 minutes), then reported to the merchant by email.

So the body is a hint and nothing more (`domain/payments/notices.py`): the payment is looked
up at Toss by its key and the ledger follows what Toss holds. Answers: 200 for whatever was
looked at, including an unknown key or a notice that contradicts Toss (retrying cannot help;
logged and counted); 503 when Toss itself could not be asked (its retry will come back);
400 for a body that is not a notification; 413 over the body limit and 429 over the
per-address limit (`SUBLEDGER_RATE_LIMIT_WEBHOOK`), like the rest of the API. The answer
never says what was found. Logs and the `subledger_webhook_notifications_total` metric
name the event, the outcome and the order id, never the payment key or the body.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.payments.notices import NoticeHandler, NoticeOutcome, NoticeResult, PaymentNotice
from schema.rate_limit import MoneyRateLimiter

log = structlog.get_logger("subledger.webhooks")

PAYMENT_EVENTS = frozenset({"PAYMENT_STATUS_CHANGED", "CANCEL_STATUS_CHANGED"})
NOTIFICATIONS = Counter(
    "subledger_webhook_notifications_total",
    "Provider notifications received, by provider, event type (OTHER for any other) and outcome.",
    ["provider", "event_type", "outcome"],
)


class Malformed(ValueError):
    pass


def parse_notice(body: Any) -> tuple[str, PaymentNotice | None]:
    """(eventType, the payment notice or None when the event names no payment); Malformed
    when the body is not a Toss notification."""
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise Malformed("not a notification: a JSON object with eventType is expected")
    event_type, data = body["eventType"], body.get("data")
    if event_type not in PAYMENT_EVENTS:
        return event_type, None
    if not isinstance(data, dict):
        raise Malformed(f"{event_type} without a data object")
    key, status, order_id, amount = (data.get(f) for f in ("paymentKey", "status", "orderId", "totalAmount"))
    if event_type == "CANCEL_STATUS_CHANGED":
        status, amount = None, None  # a Cancel object: its status is the cancel's, not the payment's
        if key is None:
            return event_type, None
    elif not isinstance(status, str):
        raise Malformed("PAYMENT_STATUS_CHANGED without data.status")
    if not isinstance(key, str) or not key or len(key) > 200:
        raise Malformed(f"{event_type} without a usable data.paymentKey")
    if order_id is not None and not isinstance(order_id, str):
        raise Malformed("data.orderId is not a string")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise Malformed("data.totalAmount is not an integer")
    return event_type, PaymentNotice(key, status, order_id, amount)


def toss_webhook(
    handler: NoticeHandler, now: Callable[[], datetime], limiter: MoneyRateLimiter | None, provider: str = "TOSS"
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        if limiter is not None:
            decision = await limiter.take_notification(address)
            if not decision.allowed:
                NOTIFICATIONS.labels(provider, "OTHER", "RATE_LIMITED").inc()
                return JSONResponse({"error": "rate limited"}, status_code=429,
                                    headers={"Retry-After": str(decision.retry_after)})
        try:
            event_type, notice = parse_notice(json.loads(await request.body()))
        except (ValueError, Malformed) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            NOTIFICATIONS.labels(provider, "OTHER", "MALFORMED").inc()
            log.warning("webhook_malformed", provider=provider, client=address, error=str(error)[:200])
            return JSONResponse({"error": "not a payment notification"}, status_code=400)
        result = (
            NoticeResult(NoticeOutcome.IGNORED) if notice is None
            else await handler.handle(provider, notice, now())
        )
        label = event_type if event_type in PAYMENT_EVENTS else "OTHER"
        NOTIFICATIONS.labels(provider, label, result.outcome.value).inc()
        level = log.warning if result.outcome in (NoticeOutcome.MISMATCH, NoticeOutcome.LOOKUP_FAILED) else log.info
        level(
            "webhook_received", provider=provider, event_type=label, outcome=result.outcome.value,
            order_id=result.order_id, gateway_status=result.gateway_status, claimed_status=notice.status if notice else None,
            changes=list(result.changes), client=address,
            transmission_id=request.headers.get("tosspayments-webhook-transmission-id"),
            retried=request.headers.get("tosspayments-webhook-transmission-retried-count"),
        )
        if result.outcome == NoticeOutcome.LOOKUP_FAILED:
            return JSONResponse({"error": "the provider could not be asked; send again later"}, status_code=503)
        return JSONResponse({"received": True})

    return endpoint
