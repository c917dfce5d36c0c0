"""The contract's enums, every value described."""
from __future__ import annotations

import enum

import strawberry

from domain import ports


def served_enum(cls: type[enum.Enum], name: str, description: str, values: dict[str, str]) -> type[enum.Enum]:
    """Serve an enum defined elsewhere (the domain imports no strawberry) with a description
    on the type and on every value; `values` must describe each member, no more, no less."""
    served = strawberry.enum(cls, name=name, description=description)
    definition = served.__strawberry_definition__  # type: ignore[attr-defined]
    names = {value.name for value in definition.values}
    if names != set(values):
        raise ValueError(f"{name}: describe exactly {sorted(names)}, got {sorted(values)}")
    for value in definition.values:
        value.description = values[value.name]
    return served


@strawberry.enum(description="How long one billing period lasts.")
class BillingCycle(enum.Enum):
    MONTHLY = strawberry.enum_value(
        "MONTHLY", description="A calendar month, anchored on the start's day of month (clamped to short months)."
    )
    ANNUAL = strawberry.enum_value(
        "ANNUAL", description="A calendar year at the plan's annual price (monthly × 12, less the annual discount)."
    )


@strawberry.enum(description="The payment provider a payment method was registered with, and charged through.")
class PaymentProvider(enum.Enum):
    TOSS = strawberry.enum_value("TOSS", description="Toss Payments (SUBLEDGER_GATEWAY includes toss).")
    KAKAO_PAY = strawberry.enum_value("KAKAO_PAY", description=(
        "KakaoPay regular payments (SUBLEDGER_GATEWAY includes kakaopay, else BAD_USER_INPUT naming it): "
        "beginPaymentMethodRegistration, the payer's approval, then registerPaymentMethod with the pg_token."
    ))
    NAVER_PAY = strawberry.enum_value("NAVER_PAY", description=(
        "NaverPay recurrent payments (SUBLEDGER_GATEWAY includes naverpay, else BAD_USER_INPUT naming it): "
        "beginPaymentMethodRegistration, the payer's approval, then registerPaymentMethod with the tempReceiptId."
    ))
    PORTONE = strawberry.enum_value(
        "PORTONE", description="PortOne V2 (SUBLEDGER_GATEWAY includes portone): authKey is the billing key "
        "PortOne's browser SDK issued, checked with PortOne before it is kept."
    )
    SANDBOX = strawberry.enum_value(
        "SANDBOX", description="The sandbox gateway (development and tests; disabled in production). Takes "
        "authKey test_card_<16 digits>."
    )


@strawberry.enum(description="What a payment paid for.")
class PaymentKind(enum.Enum):
    SUBSCRIPTION = strawberry.enum_value(
        "SUBSCRIPTION", description="A subscription period: the first one, a renewal, a trial end or a dunning retry."
    )
    PRORATION = strawberry.enum_value(
        "PRORATION", description="The prorated difference of an IMMEDIATE upgrade (changePlan)."
    )
    POINTS = strawberry.enum_value("POINTS", description="A point package (purchasePoints).")


@strawberry.enum(description="Where a payment stands.")
class PaymentStatus(enum.Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Recorded and sent to the provider; its outcome is not known yet (settled later by "
        "looking the order up)."
    )
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The provider charged the card.")
    FAILED = strawberry.enum_value("FAILED", description="Declined or not charged; failureCode says why.")
    REFUNDED = strawberry.enum_value("REFUNDED", description="Charged, then refunded in full.")
    PARTIALLY_REFUNDED = strawberry.enum_value(
        "PARTIALLY_REFUNDED", description="Charged, then refunded in part (refundedAmount < amount)."
    )


#: The domain's own enum, served as is (one definition of the normalised decline codes).
DeclineCode = served_enum(ports.DeclineCode, "DeclineCode", "Why a charge failed, normalised across providers.", {
    "INSUFFICIENT_FUNDS": "Not enough funds or credit (Toss REJECT_CARD_PAYMENT). Retried by dunning.",
    "LIMIT_EXCEEDED": "An amount or count limit of the card was reached. Retried by dunning.",
    "CARD_SUSPENDED": "The card is stopped or refused: a hard decline, never sent to the provider again with "
    "this payment method.",
    "INVALID_BILLING_KEY": "The provider does not know the billing key: a hard decline, like CARD_SUSPENDED.",
    "PROVIDER_ERROR": "The provider failed (5xx, 429) after the in-call retries.",
    "NETWORK_ERROR": "The provider could not be reached, or the order was not found when looked up.",
    "OTHER": "Any other refusal; providerFailureCode holds the provider's own code.",
})


@strawberry.enum(description="Why a wallet's points changed.")
class PointTransactionType(enum.Enum):
    PURCHASE = strawberry.enum_value("PURCHASE", description="Points and bonus credited by a point purchase.")
    USAGE = strawberry.enum_value("USAGE", description="Points spent on a service (spendPoints).")
    REWARD = strawberry.enum_value("REWARD", description="Points earned by an activity (rewardPoints).")
    REFUND = strawberry.enum_value(
        "REFUND", description="Points taken back by the refund of their purchase (negative amount)."
    )
    ADJUSTMENT = strawberry.enum_value(
        "ADJUSTMENT", description="A manual correction by an admin (adjustPoints), positive or negative."
    )
    EXPIRATION = strawberry.enum_value(
        "EXPIRATION", description="Points of a lot past its expiry, swept by the 00:00 daily run."
    )


@strawberry.enum(description="How the sandbox gateway ends a payment method's later charges (setSandboxOutcome).")
class SandboxOutcome(enum.Enum):
    SUCCEED = strawberry.enum_value("SUCCEED", description="Charge successfully.")
    INSUFFICIENT_FUNDS = strawberry.enum_value("INSUFFICIENT_FUNDS", description="Decline: INSUFFICIENT_FUNDS.")
    LIMIT_EXCEEDED = strawberry.enum_value("LIMIT_EXCEEDED", description="Decline: LIMIT_EXCEEDED.")
    CARD_SUSPENDED = strawberry.enum_value("CARD_SUSPENDED", description="Decline: CARD_SUSPENDED (a hard decline).")
    INVALID_BILLING_KEY = strawberry.enum_value(
        "INVALID_BILLING_KEY", description="Decline: INVALID_BILLING_KEY (a hard decline)."
    )
    SERVER_ERROR_ONCE = strawberry.enum_value("SERVER_ERROR_ONCE", description="Answer 500 once, then succeed.")
    RATE_LIMITED_ONCE = strawberry.enum_value("RATE_LIMITED_ONCE", description="Answer 429 once, then succeed.")
    HOLD_IN_PROGRESS = strawberry.enum_value(
        "HOLD_IN_PROGRESS", description="Leave every charge IN_PROGRESS at the provider until the sandbox completes it."
    )
