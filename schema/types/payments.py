"""Payment method and payment types."""
from __future__ import annotations

from typing import Any

import strawberry

from domain.payments.payment import Payment as PaymentAggregate
from domain.payments.payment import Refund as RefundMovement
from domain.payments.payment import RefundStatus as RefundStatusValue
from schema.scalars import DateTime
from schema.types.enums import DeclineCode, PaymentKind, PaymentProvider, PaymentStatus

RefundStatus = strawberry.enum(RefundStatusValue, name="RefundStatus", description=(
    "PENDING: recorded, its amount reserved, waiting for the provider's answer; SUCCEEDED: the provider gave "
    "the money back; FAILED: the provider refused, and what the refund reserved was released."
))


@strawberry.type(description="One refund of a payment, recorded before the provider was asked.")
class Refund:
    id: strawberry.ID
    amount: int
    reason: str
    status: RefundStatus
    points_taken_back: int = strawberry.field(description="Points a points-purchase refund took back from its lot.")
    requested_at: DateTime
    settled_at: DateTime | None
    failure_code: str | None = strawberry.field(description="The provider's code when it refused the refund.")

    @classmethod
    def of(cls, refund: RefundMovement) -> Refund:
        return cls(
            id=strawberry.ID(refund.id), amount=refund.amount, reason=refund.reason, status=refund.status,
            points_taken_back=refund.points, requested_at=refund.requested_at, settled_at=refund.settled_at,
            failure_code=refund.failure_code,
        )


@strawberry.type
class PaymentMethod:
    id: strawberry.ID
    user_id: strawberry.ID
    provider: PaymentProvider
    card_masked: str | None = strawberry.field(
        description="Masked card number as the provider reports it, e.g. 4300********0001. Never the full number."
    )
    active: bool
    created_at: DateTime

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


@strawberry.type
class Payment:
    id: strawberry.ID
    user_id: strawberry.ID
    order_id: str = strawberry.field(description="The order id sent to the provider; unique per charge attempt.")
    provider: PaymentProvider
    kind: PaymentKind
    amount: int
    refunded_amount: int
    status: PaymentStatus
    subscription_id: strawberry.ID | None
    failure_code: DeclineCode | None
    provider_failure_code: str | None = strawberry.field(
        description="The provider's own error code, e.g. REJECT_CARD_PAYMENT."
    )
    failure_message: str | None
    attempt: int = strawberry.field(description="Attempt number within the current dunning cycle (1 for a first attempt).")
    created_at: DateTime
    paid_at: DateTime | None
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
