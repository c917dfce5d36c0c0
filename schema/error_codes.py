"""The error table: every `errors[].extensions.code` the API answers, what it means,
and the extensions it carries.

It is the one list the rest reads: operation descriptions name their codes from
it (`permissions.described(..., errors=...)` refuses a code not listed here),
`subledger docs` renders it as docs/errors.md, and tests/unit/test_schema_descriptions.py
checks that every exception class with a `code` has its row here, with the
extensions that class really sets.
"""
from __future__ import annotations

from dataclasses import dataclass

from domain import errors as domain
from schema.auth import Unauthenticated
from schema.rate_limit import RateLimited


@dataclass(frozen=True)
class Extension:
    name: str
    meaning: str


@dataclass(frozen=True)
class ErrorCode:
    code: str
    meaning: str
    """When the API answers it, in a sentence or two."""
    raised_by: tuple[type[Exception], ...] = ()
    """The exception classes that carry the code (empty: set by the error mapping itself)."""
    extensions: tuple[Extension, ...] = ()
    """Extensions besides `code`."""
    http_status: int = 200
    """The HTTP status of a response whose errors include only this code (GraphQL answers 200)."""


TABLE: tuple[ErrorCode, ...] = (
    ErrorCode(
        "UNAUTHENTICATED",
        "The operation needs a bearer token and none was sent, or the one sent is malformed, expired, signed "
        "with another secret or algorithm than HS256, or unsigned. The message says which.",
        (Unauthenticated,),
    ),
    ErrorCode(
        "FORBIDDEN",
        "The token is valid but holds none of the scopes the operation accepts, or names a `userId` the caller "
        "may not act for (the same message whether or not that user exists).",
        (domain.Forbidden,),
    ),
    ErrorCode(
        "NOT_FOUND",
        "The id names nothing the caller may reach: a missing subscription, payment or payment method, and "
        "another user's object alike (never a hint that it exists).",
        (domain.NotFound,),
    ),
    ErrorCode(
        "BAD_USER_INPUT",
        "The request is malformed or an argument is out of range: a syntax or validation error, a time without "
        "an offset, an unknown plan, package, service or activity, a page size over its cap, a negative amount. "
        "Also a request that never reached GraphQL (bad JSON, body too large: HTTP 413).",
        (domain.InvalidInput,),
        (Extension("providerCode", "registerPaymentMethod only: the provider's code when it refused the authKey"),),
    ),
    ErrorCode(
        "CONFLICT",
        "The operation does not fit the object's state: subscribing while a subscription is live, resuming an "
        "active subscription, refunding a fully refunded payment, a charge still being confirmed with the "
        "provider, a rebuild already running, too many concurrent changes to one object. Nothing changed; read "
        "the object again before retrying.",
        (domain.Conflict,),
    ),
    ErrorCode(
        "INSUFFICIENT_POINTS",
        "The wallet's usable (unexpired) points do not cover the spend; nothing was spent.",
        (domain.InsufficientPoints,),
        (Extension("available", "usable points now"), Extension("required", "points the spend needs")),
    ),
    ErrorCode(
        "USAGE_LIMIT_EXCEEDED",
        "The plan's monthly quota for the service is used up in the current window (or the plan does not "
        "include the service: limit 0); nothing was recorded.",
        (domain.UsageLimitExceeded,),
        (Extension("limit", "uses allowed in the window"), Extension("used", "uses already recorded in it")),
    ),
    ErrorCode(
        "PAYMENT_FAILED",
        "The provider declined the charge, or the payment method is remembered as hard-declined. The failed "
        "charge is recorded as a FAILED payment; nothing else changed.",
        (domain.PaymentFailed,),
        (
            Extension("declineCode", "the normalised DeclineCode: INSUFFICIENT_FUNDS, LIMIT_EXCEEDED, "
                      "CARD_SUSPENDED, INVALID_BILLING_KEY, PROVIDER_ERROR, NETWORK_ERROR or OTHER"),
            Extension("paymentId", "id of the FAILED payment recorded for the attempt"),
        ),
    ),
    ErrorCode(
        "ALREADY_CLAIMED",
        "The reward activity was already earned: `daily_login` today (a calendar day in SUBLEDGER_TIMEZONE), "
        "`first_review` ever.",
        (domain.AlreadyClaimed,),
    ),
    ErrorCode(
        "IDEMPOTENCY_KEY_REUSED",
        "The idempotencyKey was used before, by the same caller and operation, with a different input. "
        "The same key with the same input answers the first result instead.",
        (domain.IdempotencyKeyReused,),
    ),
    ErrorCode(
        "PROMO_CODE_INVALID",
        "The promo code is unknown, expired, used up, or not valid for the plan.",
        (domain.PromoCodeInvalid,),
    ),
    ErrorCode(
        "SANDBOX_ONLY",
        "The operation works only on payment methods of the sandbox gateway.",
        (domain.SandboxOnly,),
    ),
    ErrorCode(
        "RATE_LIMITED",
        "The caller made too many money operations (charges, refunds, card registrations) in the moving "
        "window of SUBLEDGER_RATE_LIMIT (SUBLEDGER_RATE_LIMIT_ADMIN for admin tokens). The whole document was "
        "refused; retry after the given time.",
        (RateLimited,),
        (Extension("retryAfter", "whole seconds to wait; also the `Retry-After` header"),),
        http_status=429,
    ),
    ErrorCode(
        "INTERNAL",
        "Anything unexpected: the message is only `internal error` (no stack trace or SQL); the server logs "
        "the details. Whether a change happened is unknown: read the object again, or retry with the same "
        "idempotencyKey.",
    ),
)

BY_CODE: dict[str, ErrorCode] = {entry.code: entry for entry in TABLE}
assert len(BY_CODE) == len(TABLE), "an error code has two rows"


def known(*codes: str) -> tuple[str, ...]:
    """`codes`, after checking each is in the table (a typo fails at import, not in the docs)."""
    unknown = [code for code in codes if code not in BY_CODE]
    if unknown:
        raise ValueError(f"not in the error table: {', '.join(unknown)}")
    return codes
