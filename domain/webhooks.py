"""Webhooks, the pure rules (docs/webhooks.md): event types, endpoint URLs, signatures,
the retry schedule and the states of a delivery.

Signing follows the scheme receivers of Stripe's webhooks know: the header
`Subledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC is
keyed with the endpoint's signing secret (its UTF-8 bytes, `whsec_` included)
over `"{t}.{body}"`, the exact bytes of the request body.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from domain.errors import InvalidInput, NotFound

SIGNATURE_HEADER = "Subledger-Signature"
EVENT_ID_HEADER = "Subledger-Event-Id"
EVENT_TYPE_HEADER = "Subledger-Event-Type"
SECRET_PREFIX = "whsec_"
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 200


class WebhookEventType(enum.Enum):
    """What happened; the value is the `type` field of the payload."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_STATUS_CHANGED = "subscription.status_changed"
    SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
    POINTS_PURCHASED = "points.purchased"
    POINTS_EXPIRED = "points.expired"


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"  # waiting for its first attempt or for a retry
    SUCCEEDED = "SUCCEEDED"  # the endpoint answered 2xx
    FAILED = "FAILED"  # no 2xx within the retry window: no more automatic attempts


def new_secret() -> str:
    """A signing secret: `whsec_` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_url(url: str, *, https_only: bool) -> str:
    """The endpoint URL, or InvalidInput. http and https only (https only when `https_only`,
    which production sets); a host is required; user:password@ is refused, because
    endpoint URLs are listed to every ADMIN and written in logs."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url is required")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"url is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise InvalidInput("url is not a valid URL") from None
    allowed = ("https",) if https_only else ("http", "https")
    if parts.scheme.lower() not in allowed:
        raise InvalidInput(f"url must start with {' or '.join(s + '://' for s in allowed)}")
    if not parts.hostname:
        raise InvalidInput("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry a user name or password")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInput("url must not contain spaces or control characters")
    return url


def check_description(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION_CHARS} characters")
    if description is not None and not description.isprintable():
        raise InvalidInput("description must be one line of printable characters")
    return description


def known_id(value: str, what: str) -> str:
    """An id as given; NOT_FOUND for one no row can have (a NUL byte, which PostgreSQL's
    text cannot even be compared with)."""
    if "\x00" in value:
        raise NotFound(f"{what} {value!r} not found")
    return value


def check_event_types(types: list[WebhookEventType]) -> list[WebhookEventType]:
    if not types:
        raise InvalidInput("eventTypes needs at least one event type")
    return list(dict.fromkeys(types))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"{timestamp}.{body}"` under the secret."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th failed attempt waits
    `min(base * 2**(n-1), cap)` times a random factor in [0.8, 1.2); a delivery still
    failing when its next attempt would fall after `window` from its start is FAILED.
    With the defaults (30 s, 2 h, 24 h) that is about 18 attempts over a day."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=2)
    window: timedelta = timedelta(hours=24)

    def delay(self, failed_attempts: int, jitter: float) -> timedelta:
        """The wait after the `failed_attempts`-th failure; `jitter` is uniform in [0, 1)."""
        exponent = min(max(failed_attempts - 1, 0), 30)
        plain = min(self.base * (2**exponent), self.cap)
        return plain * (0.8 + 0.4 * jitter)

    def after_failure(self, started: datetime, now: datetime, failed_attempts: int, jitter: float) -> datetime | None:
        """When to try again, or None: give up (the delivery is FAILED)."""
        retry_at = now + self.delay(failed_attempts, jitter)
        return retry_at if retry_at <= started + self.window else None
