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
    registration_id: str | None = strawberry.field(
        default=None, description="KAKAO_PAY, NAVER_PAY: the registrationId beginPaymentMethodRegistration answered; "
        "authKey then carries the pg_token KakaoPay added to approvalUrl (NaverPay: the tempReceiptId it added). "
        "Other providers: leave out."
    )


@strawberry.input(description="Start registering a provider whose payer approves on the provider's own pages (KAKAO_PAY, NAVER_PAY).")
class BeginPaymentMethodRegistrationInput:
    provider: PaymentProvider = strawberry.field(description="An enabled provider that needs a redirect (KAKAO_PAY, NAVER_PAY).")
    customer_key: str = strawberry.field(description="The caller's key at the provider (KakaoPay's partner_user_id); "
                                         "NaverPay's merchantUserId); the same customerKey completes it.")
    approval_url: str = strawberry.field(description="Where the provider sends the payer after approving (http(s), "
                                         "at most 255 characters); KakaoPay adds ?pg_token=...; NaverPay (its returnUrl) adds "
                                         "?resultCode=Success&reserveId=...&tempReceiptId=..., or another resultCode.")
    cancel_url: str = strawberry.field(description="Where the provider sends a payer who cancels (NaverPay: "
                                      "unused, it returns to approvalUrl with resultCode).")
    fail_url: str = strawberry.field(description="Where the provider sends a payer whose approval failed "
                                    "(NaverPay: unused, as cancelUrl).")


@strawberry.type(description="A registration waiting for the payer's approval at the provider.")
class PaymentMethodRegistration:
    registration_id: str = strawberry.field(description="Pass it to registerPaymentMethod with the approval token.")
    redirect_pc_url: str | None = strawberry.field(description="The provider's approval page for a desktop browser.")
    redirect_mobile_url: str | None = strawberry.field(description="The provider's approval page for a mobile browser.")
    redirect_app_url: str | None = strawberry.field(description="The provider's approval page inside a mobile app.")


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
            caller.user_id, input.provider.value, input.auth_key, input.customer_key, services.clock.now(),
            registration_id=input.registration_id,
        )
        return PaymentMethod.of(caller.user_id, method)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "beginPaymentMethodRegistration",
        "Start registering a KAKAO_PAY method: KakaoPay prepares the first regular payment (SUBLEDGER_KAKAO_"
        "REGISTRATION_AMOUNT won, 0 by default) and answers its approval pages; send the payer there, then call "
        "registerPaymentMethod with the registrationId and the pg_token KakaoPay adds to approvalUrl. A provider "
        "not enabled, or one that needs no redirect, answers BAD_USER_INPUT.",
        errors=("BAD_USER_INPUT",),
    ))
    async def begin_payment_method_registration(
        self, info: Info,
        input: Annotated[BeginPaymentMethodRegistrationInput, strawberry.argument(description="The provider and pages.")],
    ) -> PaymentMethodRegistration:
        permissions.caller(info)
        redirect = await info.context.services.billing.begin_registration(
            input.provider.value, input.customer_key, input.approval_url, input.cancel_url, input.fail_url
        )
        return PaymentMethodRegistration(
            registration_id=redirect.registration_id, redirect_pc_url=redirect.pc_url,
            redirect_mobile_url=redirect.mobile_url, redirect_app_url=redirect.app_url,
        )

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
        Root.MUTATION, "settlePaymentFromProvider",
        "Settle a PENDING charge the settle job cannot look up by its order id (a KAKAO_PAY charge whose answer "
        "was lost: KakaoPay finds payments by tid only): give the provider's key of it (KakaoPay's tid, found in its "
        "partner admin by the order id). It is looked up at the provider, must be this payment's order, and the "
        "payment is settled from what the provider holds. Charges nothing. A key the provider does not confirm "
        "answers BAD_USER_INPUT; a payment not PENDING, CONFLICT.",
        errors=("BAD_USER_INPUT", "NOT_FOUND", "CONFLICT"),
    ))
    async def settle_payment_from_provider(
        self, info: Info,
        payment_id: Annotated[strawberry.ID, strawberry.argument(description="The PENDING payment.")],
        provider_payment_key: Annotated[str, strawberry.argument(description="The provider's key of it (KakaoPay: tid).")],
    ) -> Payment:
        permissions.caller(info)
        services = info.context.services
        payment = await services.billing.settle_from_provider(str(payment_id), provider_payment_key, services.clock.now())
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
