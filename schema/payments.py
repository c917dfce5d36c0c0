"""Payment methods, payments and refunds (SPEC §5)."""
from __future__ import annotations

from typing import Annotated

import strawberry

from domain.errors import NotFound
from domain.customer_commands import payment_method_owner
from schema import pages, permissions
from schema.arguments import UserId, idempotency_field
from schema.context import Info
from schema.permissions import Root
from schema.types.enums import PaymentProvider, SandboxOutcome
from schema.types.payments import Payment, PaymentMethod


@strawberry.input(description="A card to register: the provider's one-time authKey, exchanged for a billing key.")
class RegisterPaymentMethodInput:
    provider: PaymentProvider = strawberry.field(description="An enabled provider (SUBLEDGER_GATEWAY), else BAD_USER_INPUT.")
    auth_key: str = strawberry.field(
        description="The authKey the provider's billing-auth widget returned (Toss), the billing key PortOne's browser "
        "SDK issued (PORTONE), or the sandbox's test card token."
    )
    customer_key: str = strawberry.field(
        description="The customerKey used when requesting the authKey (PORTONE: the customer id the key was issued for)."
    )


@strawberry.input(description="What to refund.")
class RefundPaymentInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment (SUCCEEDED or PARTIALLY_REFUNDED).")
    amount: int | None = strawberry.field(
        default=None, description="KRW to refund, 1 to what is left (else BAD_USER_INPUT); default: all of it. For a points purchase "
        "the ceiling is the price share of its unspent points: floor(price × unspent ÷ points in the lot)."
    )
    reason: str = strawberry.field(description="Why, for the record and the provider.")
    idempotency_key: str | None = idempotency_field()


def method_owner(info: Info, method_id: str) -> str:
    """The owner of a payment method the caller may act on; a foreign id reads as not found."""
    owner = payment_method_owner(method_id)
    if not permissions.reaches(info, owner):
        raise NotFound(f"payment method {method_id} not found")
    return owner


@strawberry.type
class PaymentsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "paymentMethods", "The user's payment methods, removed ones included, from the ledger.",
    ))
    async def payment_methods(self, info: Info, user_id: UserId = None) -> list[PaymentMethod]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        customer = await services.run_sync(services.ledger.customer, user)
        methods = customer.payment_methods.values() if customer else []
        return [PaymentMethod.of(user, m) for m in methods]

    @strawberry.field(description=permissions.described(
        Root.QUERY, "payments",
        "The user's newest payments, newest first. Listed from the payments read model, so a payment just made "
        "may take a moment (the projection delay) to appear; each listed payment is read from the ledger. "
        f"{pages.PAYMENTS.describe()}",
        errors=("BAD_USER_INPUT",),
    ), deprecation_reason="Use paymentsPage: the same list, with a cursor to reach older payments.")
    async def payments(
        self, info: Info, user_id: UserId = None,
        first: Annotated[int | None, strawberry.argument(description="How many.")] = pages.PAYMENTS.default,
    ) -> list[Payment]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        payment_ids = await services.run_sync(services.payments.recent_payment_ids, user, pages.PAYMENTS.of(first))
        loaded = [await services.run_sync(services.ledger.payment, pid) for pid in payment_ids]
        return [Payment.of(p) for p in loaded if p is not None]


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "registerPaymentMethod",
        "Register a card for the caller: the provider exchanges the authKey for a billing key, which is kept "
        "sealed; answers the new payment method with its masked number. An authKey the provider refuses answers "
        "BAD_USER_INPUT with extensions.providerCode (nothing registered).",
        errors=("BAD_USER_INPUT",),
    ))
    async def register_payment_method(
        self, info: Info, input: Annotated[RegisterPaymentMethodInput, strawberry.argument(description="The card.")]
    ) -> PaymentMethod:
        caller = permissions.caller(info)
        services = info.context.services
        method = await services.billing.register_payment_method(
            caller.user_id, input.provider.value, input.auth_key, input.customer_key, services.clock.now()
        )
        return PaymentMethod.of(caller.user_id, method)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "removePaymentMethod",
        "Deactivate a payment method: it is never charged again (a subscription using it has no card for its "
        "next charge). Answers it with active false.",
    ))
    async def remove_payment_method(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The payment method.")]
    ) -> PaymentMethod:
        services = info.context.services
        owner = method_owner(info, str(id))
        method = await services.run_sync(services.ledger.customers.remove_payment_method, owner, str(id), services.clock.now())
        return PaymentMethod.of(owner, method)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "refundPayment",
        "Refund a payment through its provider: the refund is recorded PENDING (its amount reserved) before the "
        "provider is asked, and settled from its answer. A points purchase takes back its unspent points and "
        "refunds their share of the price. Answers the payment with its refunds. A refund the provider refuses "
        "answers CONFLICT (and releases what it reserved); one already in progress, or nothing left, too.",
        errors=("BAD_USER_INPUT", "NOT_FOUND", "CONFLICT", "IDEMPOTENCY_KEY_REUSED"),
    ))
    async def refund_payment(
        self, info: Info, input: Annotated[RefundPaymentInput, strawberry.argument(description="What to refund.")]
    ) -> Payment:
        permissions.caller(info)
        services = info.context.services
        payment = await services.billing.refund_payment(
            str(input.payment_id), input.amount, input.reason, services.clock.now(),
            actor=info.context.caller.user_id, idempotency_key=input.idempotency_key,
        )
        return Payment.of(payment)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "setSandboxOutcome",
        "Sandbox gateway only: make this payment method's later charges end this way (tests and demos). "
        "Changes nothing in the ledger.",
        errors=("SANDBOX_ONLY", "CONFLICT"),
    ))
    async def set_sandbox_outcome(
        self, info: Info,
        payment_method_id: Annotated[strawberry.ID, strawberry.argument(description="A SANDBOX payment method.")],
        outcome: Annotated[SandboxOutcome, strawberry.argument(description="How its later charges end.")],
    ) -> PaymentMethod:
        services = info.context.services
        owner = method_owner(info, str(payment_method_id))
        method = await services.billing.set_sandbox_outcome(owner, str(payment_method_id), outcome.value)
        return PaymentMethod.of(owner, method)
