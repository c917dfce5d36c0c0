"""Wallet queries and mutations (SPEC §4)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import jwt
import strawberry

from domain.ids import wallet_id
from domain.wallet import Wallet as WalletAggregate
from schema import permissions
from schema.arguments import USER_ID, AsOf, UserId, idempotency_field
from schema.context import Info
from schema.permissions import Root
from schema.types.payments import Payment
from schema.types.wallet import PointPurchase, PointTransaction, SpendResult, Wallet


@strawberry.input(description="A point package to buy.")
class PurchasePointsInput:
    package_id: strawberry.ID = strawberry.field(description="A catalog point package (else BAD_USER_INPUT).")
    payment_method_id: strawberry.ID = strawberry.field(description="One of the caller's own active payment methods.")
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="Points to spend on one bought service: give exactly one of service or amount.")
class SpendPointsInput:
    service: str | None = strawberry.field(default=None, description="Catalog service whose cost is spent; or give amount.")
    amount: int | None = strawberry.field(default=None, description="Points to spend (positive); or give service.")
    service_id: str = strawberry.field(description=(
        "The id of what was bought (reading id, consultation id). Spending the same serviceId again answers "
        "the first result and spends nothing."
    ))
    user_id: strawberry.ID | None = strawberry.field(default=None, description=USER_ID)
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="An activity a user earned points for.")
class RewardPointsInput:
    user_id: strawberry.ID = strawberry.field(description="The user rewarded.")
    activity: str = strawberry.field(description="A catalog reward activity, e.g. daily_login (else BAD_USER_INPUT).")
    idempotency_key: str | None = idempotency_field()


@strawberry.input(description="A manual correction of a wallet.")
class AdjustPointsInput:
    user_id: strawberry.ID = strawberry.field(description="The wallet's owner.")
    amount: int = strawberry.field(description=(
        "Points to credit (positive: a lot without expiry) or debit (negative: at most the usable balance). Not 0."
    ))
    reason: str = strawberry.field(description="Why; shown as the transaction's description. Not empty.")
    idempotency_key: str | None = idempotency_field()


async def load_wallet(info: Info, user_id: str, as_of: datetime | None = None) -> Wallet:
    services = info.context.services
    now = services.clock.now()
    if as_of is None:
        aggregate = await services.run_sync(services.ledger.wallet, user_id)
        return Wallet.of(user_id, aggregate, now)
    aggregate = await services.run_sync(services.ledger.as_of, WalletAggregate, wallet_id(user_id), as_of)
    return Wallet.of(user_id, aggregate, as_of, as_of=as_of)


@strawberry.type
class WalletQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "wallet",
        "The user's point wallet, read from the ledger (read-your-writes; an empty wallet if never used). "
        "asOf: balances reconstructed from the ledger as they stood at that time.",
    ))
    async def wallet(self, info: Info, user_id: UserId = None, as_of: AsOf = None) -> Wallet:
        user = permissions.subject(info, user_id, as_of=as_of is not None)
        return await load_wallet(info, user, as_of)


@strawberry.type
class WalletMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "purchasePoints",
        "Buy a point package for the caller, charged to the caller's own payment method. The charge is recorded "
        "before the provider is called; on success points + bonus are credited as one lot expiring in 365 days. "
        "A decline answers PAYMENT_FAILED and credits nothing (the FAILED payment is recorded). If the "
        "provider's answer is lost the payment stays PENDING (pendingBalance) until it is looked up.",
        errors=("BAD_USER_INPUT", "NOT_FOUND", "PAYMENT_FAILED", "IDEMPOTENCY_KEY_REUSED", "CONFLICT"),
    ))
    async def purchase_points(
        self, info: Info, input: Annotated[PurchasePointsInput, strawberry.argument(description="What to buy.")]
    ) -> PointPurchase:
        caller = permissions.caller(info)
        services = info.context.services
        payment = await services.billing.purchase_points(
            caller.user_id, str(input.package_id), str(input.payment_method_id), services.clock.now(), input.idempotency_key
        )
        purpose = payment.purpose
        return PointPurchase(
            payment=Payment.of(payment),
            points_purchased=purpose["points"],
            bonus_points=purpose["bonus"],
            total_points=purpose["points"] + purpose["bonus"],
            wallet=await load_wallet(info, caller.user_id),
        )

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "spendPoints",
        "Spend points on a bought service: drawn from the lots that expire first. Not enough usable points "
        "answers INSUFFICIENT_POINTS and spends nothing; the balance never goes below zero.",
        errors=("BAD_USER_INPUT", "INSUFFICIENT_POINTS", "IDEMPOTENCY_KEY_REUSED", "CONFLICT"),
    ))
    async def spend_points(
        self, info: Info, input: Annotated[SpendPointsInput, strawberry.argument(description="What to spend on.")]
    ) -> SpendResult:
        services = info.context.services
        user = permissions.subject(info, input.user_id or None)
        result = await services.run_sync(
            lambda: services.ledger.wallets.spend_points(
                user,
                service=input.service,
                amount=input.amount,
                service_id=input.service_id,
                now=services.clock.now(),
                idempotency_key=input.idempotency_key,
            )
        )
        transaction = result["transaction"]
        claims = {
            "sub": user,
            "service": input.service or "amount",
            "serviceId": input.service_id,
            "transactionId": str(transaction["id"]),
            "iat": int(time.time()),
        }
        return SpendResult(
            transaction=PointTransaction.of(transaction),
            points_spent=-transaction["amount"],
            remaining_balance=result["remaining_balance"],
            grant=lambda: jwt.encode(claims, services.jwt_secret, algorithm="HS256"),
        )

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "rewardPoints",
        "(SYSTEM: the service scope.) Credit the catalog's points for an activity as a lot expiring in 365 days. "
        "daily_login once per calendar day, first_review once per user, else ALREADY_CLAIMED.",
        errors=("BAD_USER_INPUT", "ALREADY_CLAIMED", "IDEMPOTENCY_KEY_REUSED", "CONFLICT"),
    ))
    async def reward_points(
        self, info: Info, input: Annotated[RewardPointsInput, strawberry.argument(description="Who and for what.")]
    ) -> PointTransaction:
        caller = permissions.caller(info)
        services = info.context.services
        transaction = await services.run_sync(
            lambda: services.ledger.wallets.reward_points(
                str(input.user_id),
                input.activity,
                now=services.clock.now(),
                actor=caller.user_id,
                idempotency_key=input.idempotency_key,
            )
        )
        return PointTransaction.of(transaction)

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "adjustPoints",
        "Correct a wallet by hand: an ADJUSTMENT transaction, recorded with the admin's id.",
        errors=("BAD_USER_INPUT", "INSUFFICIENT_POINTS", "IDEMPOTENCY_KEY_REUSED", "CONFLICT"),
    ))
    async def adjust_points(
        self, info: Info, input: Annotated[AdjustPointsInput, strawberry.argument(description="The correction.")]
    ) -> PointTransaction:
        caller = permissions.caller(info)
        services = info.context.services
        transaction = await services.run_sync(
            lambda: services.ledger.wallets.adjust_points(
                str(input.user_id),
                input.amount,
                input.reason,
                now=services.clock.now(),
                actor=caller.user_id,
                idempotency_key=input.idempotency_key,
            )
        )
        return PointTransaction.of(transaction)

