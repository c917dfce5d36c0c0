"""Domain errors. Each carries the contract's error code (schema.graphql, SPEC §1
"Error codes") so one function in `schema/errors.py` can map any of them."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal the domain makes on purpose."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Conflict(DomainError):
    code = "CONFLICT"


class InsufficientPoints(DomainError):
    code = "INSUFFICIENT_POINTS"

    def __init__(self, available: int, required: int) -> None:
        super().__init__(
            f"not enough usable points: {available} available, {required} required",
            available=available,
            required=required,
        )


class UsageLimitExceeded(DomainError):
    code = "USAGE_LIMIT_EXCEEDED"

    def __init__(self, service: str, limit: int, used: int) -> None:
        super().__init__(f"usage limit of {service} reached: {used} of {limit}", limit=limit, used=used)


class PaymentFailed(DomainError):
    code = "PAYMENT_FAILED"

    def __init__(self, decline_code: str, payment_id: str, message: str = "") -> None:
        super().__init__(
            f"payment failed: {decline_code}" + (f" ({message})" if message else ""),
            declineCode=decline_code,
            paymentId=payment_id,
        )
        self.decline_code = decline_code
        self.payment_id = payment_id


class AlreadyClaimed(DomainError):
    code = "ALREADY_CLAIMED"


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"


class PromoCodeInvalid(DomainError):
    code = "PROMO_CODE_INVALID"


class SandboxOnly(DomainError):
    code = "SANDBOX_ONLY"
