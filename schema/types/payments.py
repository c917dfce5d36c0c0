"""Payment method and payment types."""
from __future__ import annotations

from typing import Any

import strawberry

from domain.payments.payment import Payment as PaymentAggregate
from domain.payments.payment import Refund as RefundMovement
from domain.payments.payment import RefundStatus as RefundStatusValue
from schema.scalars import DateTime
from schema.types.enums import DeclineCode, PaymentKind, PaymentProvider, PaymentStatus, served_enum

RefundStatus = served_enum(RefundStatusValue, "RefundStatus", "Where a refund stands.", {
    "PENDING": "Recorded, its amount (and points) reserved, waiting for the provider's answer.",
    "SUCCEEDED": "The provider gave the money back; counted in the payment's refundedAmount.",
    "FAILED": "The provider refused; what the refund reserved was released.",
})


@strawberry.type(description="One refund of a payment, recorded before the provider was asked.")
class Refund:
    id: strawberry.ID = strawberry.field(description="The refund's id.")
    amount: int = strawberry.field(description="KRW to give back.")
    reason: str = strawberry.field(description="The reason given to refundPayment (or the cancellation or plan change that refunded).")
    status: RefundStatus = strawberry.field(description="Where the refund stands.")
    points_taken_back: int = strawberry.field(description="Points a points-purchase refund took back from its lot.")
    requested_at: DateTime = strawberry.field(description="When it was recorded (before the provider was asked).")
    settled_at: DateTime | None = strawberry.field(description="When the provider's answer was recorded; null while PENDING.")
    failure_code: str | None = strawberry.field(description="The provider's code when it refused the refund.")

    @classmethod
    def of(cls, refund: RefundMovement) -> Refund:
        return cls(
            id=strawberry.ID(refund.id), amount=refund.amount, reason=refund.reason, status=refund.status,
            points_taken_back=refund.points, requested_at=refund.requested_at, settled_at=refund.settled_at,
            failure_code=refund.failure_code,
        )


@strawberry.type(description=(
    "A card registered with a provider, kept as the provider's billing key (never shown) and a masked number."
))
class PaymentMethod:
    id: strawberry.ID = strawberry.field(description="The payment method's id (paymentMethodId in other operations).")
    user_id: strawberry.ID = strawberry.field(description="Its owner.")
    provider: PaymentProvider = strawberry.field(description="The provider it was registered with and is charged through.")
    card_masked: str | None = strawberry.field(
        description="Masked card number as the provider reports it, e.g. 4300********0001. Never the full number."
    )
    active: bool = strawberry.field(description="False once removed (removePaymentMethod); a removed method is never charged.")
    created_at: DateTime = strawberry.field(description="When it was registered.")

    @classmethod
    def of(cls, user_id: str, method: dict[str, Any]) -> PaymentMethod:
        return cls(
            id=strawberry.ID(method["id"]),
            user_id=strawberry.ID(user_id),
            provider=PaymentProvider(method["provider"]),
            card_masked=method["card_masked"],
            active=method["active"],
            created_at=method["created_at"],
        )


@strawberry.type(description=(
    "One charge attempt: recorded PENDING before the provider is called, settled from its answer, and the "
    "refunds made against it. Amounts are whole KRW."
))
class Payment:
    id: strawberry.ID = strawberry.field(description="The payment's id (paymentId in refundPayment and errors).")
    user_id: strawberry.ID = strawberry.field(description="Who paid.")
    order_id: str = strawberry.field(description="The order id sent to the provider; unique per charge attempt.")
    provider: PaymentProvider = strawberry.field(description="The provider charged.")
    kind: PaymentKind = strawberry.field(description="What it paid for.")
    amount: int = strawberry.field(description="KRW charged (or asked for, when it failed).")
    refunded_amount: int = strawberry.field(description="KRW given back by SUCCEEDED refunds.")
    status: PaymentStatus = strawberry.field(description="Where it stands.")
    subscription_id: strawberry.ID | None = strawberry.field(
        description="The subscription paid for (SUBSCRIPTION and PRORATION payments); null for points."
    )
    failure_code: DeclineCode | None = strawberry.field(description="Why it failed (FAILED only).")
    provider_failure_code: str | None = strawberry.field(
        description="The provider's own error code, e.g. REJECT_CARD_PAYMENT."
    )
    failure_message: str | None = strawberry.field(description="The provider's message for a failure, as given.")
    attempt: int = strawberry.field(description="Attempt number within the current dunning cycle (1 for a first attempt).")
    created_at: DateTime = strawberry.field(description="When it was recorded, before the provider was called.")
    paid_at: DateTime | None = strawberry.field(description="When the provider confirmed the charge; null unless it succeeded.")
    receipt_url: str | None = strawberry.field(description=(
        "The provider's receipt page for this charge (Toss: the payment's receipt.url), as its answer gave it when "
        "the charge succeeded; null until then, for a declined charge, and for charges settled before receipts were "
        "kept. A public link for the payer, never holding a billing key; readable by whoever may read the payment. "
        "Refunds have none of their own: Toss gives no receipt URL for a cancel."
    ))
    refunds: list[Refund] = strawberry.field(
        description="Every refund of this payment, oldest first; refundedAmount counts the SUCCEEDED ones."
    )

    @classmethod
    def of(cls, payment: PaymentAggregate) -> Payment:
        return cls(
            id=strawberry.ID(str(payment.id)),
            user_id=strawberry.ID(payment.user_id),
            order_id=payment.order_id,
            provider=PaymentProvider(payment.provider),
            kind=PaymentKind(payment.kind),
            amount=payment.amount,
            refunded_amount=payment.refunded_amount,
            status=PaymentStatus(payment.status),
            subscription_id=strawberry.ID(payment.subscription_id) if payment.subscription_id else None,
            failure_code=DeclineCode(payment.failure_code) if payment.failure_code else None,
            provider_failure_code=payment.provider_failure_code,
            failure_message=payment.failure_message,
            attempt=payment.attempt,
            created_at=payment.created_at,
            paid_at=payment.paid_at,
            receipt_url=payment.receipt_url,
            refunds=[Refund.of(r) for r in payment.refunds],
        )
