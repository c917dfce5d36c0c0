"""Payment methods, payments and refunds (SPEC §5)."""
from __future__ import annotations

import strawberry

from domain.errors import NotFound
from domain.customer_commands import payment_method_owner
from schema import pages, permissions
from schema.context import Info
from schema.permissions import Root
from schema.types.enums import PaymentProvider, SandboxOutcome
from schema.types.payments import Payment, PaymentMethod


@strawberry.input
class RegisterPaymentMethodInput:
    provider: PaymentProvider
    auth_key: str = strawberry.field(
        description="The authKey the provider's billing-auth widget returned (Toss), or the sandbox's test card token."
    )
    customer_key: str = strawberry.field(description="The customerKey used when requesting the authKey.")


@strawberry.input
class RefundPaymentInput:
    payment_id: strawberry.ID
    amount: int | None = strawberry.field(default=None, description="Default: the whole refundable amount.")
    reason: str
    idempotency_key: str | None = None


def method_owner(info: Info, method_id: str) -> str:
    """The owner of a payment method the caller may act on; a foreign id reads as not found."""
    owner = payment_method_owner(method_id)
    if not permissions.reaches(info, owner):
        raise NotFound(f"payment method {method_id} not found")
    return owner


@strawberry.type
class PaymentsQuery:
    @strawberry.field(description=permissions.described(Root.QUERY, "paymentMethods"))
    async def payment_methods(self, info: Info, user_id: strawberry.ID | None = None) -> list[PaymentMethod]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        customer = await services.run_sync(services.ledger.customer, user)
        methods = customer.payment_methods.values() if customer else []
        return [PaymentMethod.of(user, m) for m in methods]

    @strawberry.field(description=permissions.described(
        Root.QUERY, "payments", f"Newest first. {pages.PAYMENTS.describe()}"
    ))
    async def payments(
        self, info: Info, user_id: strawberry.ID | None = None, first: int | None = pages.PAYMENTS.default
    ) -> list[Payment]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        payment_ids = await services.run_sync(services.payments.recent_payment_ids, user, pages.PAYMENTS.of(first))
        loaded = [await services.run_sync(services.ledger.payment, pid) for pid in payment_ids]
        return [Payment.of(p) for p in loaded if p is not None]


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(description=permissions.described(Root.MUTATION, "registerPaymentMethod", "For the caller."))
    async def register_payment_method(self, info: Info, input: RegisterPaymentMethodInput) -> PaymentMethod:
        caller = permissions.caller(info)
        services = info.context.services
        method = await services.billing.register_payment_method(
            caller.user_id, input.provider.value, input.auth_key, input.customer_key, services.clock.now()
        )
        return PaymentMethod.of(caller.user_id, method)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "removePaymentMethod"))
    async def remove_payment_method(self, info: Info, id: strawberry.ID) -> PaymentMethod:
        services = info.context.services
        owner = method_owner(info, str(id))
        method = await services.run_sync(services.ledger.customers.remove_payment_method, owner, str(id), services.clock.now())
        return PaymentMethod.of(owner, method)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "refundPayment",
        "Refund a payment through its provider; a points purchase takes back its unspent points.",
    ))
    async def refund_payment(self, info: Info, input: RefundPaymentInput) -> Payment:
        permissions.caller(info)
        services = info.context.services
        payment = await services.billing.refund_payment(
            str(input.payment_id), input.amount, input.reason, services.clock.now(),
            actor=info.context.caller.user_id, idempotency_key=input.idempotency_key,
        )
        return Payment.of(payment)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "setSandboxOutcome",
        "Sandbox gateway only (else SANDBOX_ONLY): make this payment method's next charges end this way.",
    ))
    async def set_sandbox_outcome(
        self, info: Info, payment_method_id: strawberry.ID, outcome: SandboxOutcome
    ) -> PaymentMethod:
        services = info.context.services
        owner = method_owner(info, str(payment_method_id))
        method = await services.billing.set_sandbox_outcome(owner, str(payment_method_id), outcome.value)
        return PaymentMethod.of(owner, method)
