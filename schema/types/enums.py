"""The contract's enums."""
from __future__ import annotations

import enum

import strawberry

from domain import ports


@strawberry.enum
class BillingCycle(enum.Enum):
    MONTHLY = "MONTHLY"
    ANNUAL = "ANNUAL"


@strawberry.enum
class PaymentProvider(enum.Enum):
    TOSS = "TOSS"
    KAKAO_PAY = "KAKAO_PAY"
    NAVER_PAY = "NAVER_PAY"
    SANDBOX = "SANDBOX"


@strawberry.enum
class PaymentKind(enum.Enum):
    SUBSCRIPTION = "SUBSCRIPTION"
    PRORATION = "PRORATION"
    POINTS = "POINTS"


@strawberry.enum
class PaymentStatus(enum.Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"


#: The domain's own enum, served as is (one definition of the normalised decline codes).
DeclineCode = strawberry.enum(ports.DeclineCode, name="DeclineCode", description="Why a charge failed, normalised across providers.")


@strawberry.enum
class PointTransactionType(enum.Enum):
    PURCHASE = "PURCHASE"
    USAGE = "USAGE"
    REWARD = "REWARD"
    REFUND = "REFUND"
    ADJUSTMENT = "ADJUSTMENT"
    EXPIRATION = "EXPIRATION"


@strawberry.enum
class SandboxOutcome(enum.Enum):
    SUCCEED = "SUCCEED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    CARD_SUSPENDED = "CARD_SUSPENDED"
    INVALID_BILLING_KEY = "INVALID_BILLING_KEY"
    SERVER_ERROR_ONCE = strawberry.enum_value("SERVER_ERROR_ONCE", description="Answer 500 once, then succeed.")
    RATE_LIMITED_ONCE = strawberry.enum_value("RATE_LIMITED_ONCE", description="Answer 429 once, then succeed.")
    HOLD_IN_PROGRESS = strawberry.enum_value(
        "HOLD_IN_PROGRESS", description="Leave every charge IN_PROGRESS at the provider until the sandbox completes it."
    )
