"""Wallet queries and mutations (SPEC §4)."""
from __future__ import annotations

import time
from datetime import datetime

import jwt
import strawberry

from domain.ids import wallet_id
from domain.wallet import Wallet as WalletAggregate
from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.payments import Payment
from schema.types.wallet import PointPurchase, PointTransaction, SpendResult, Wallet


@strawberry.input
class PurchasePointsInput:
    package_id: strawberry.ID
    payment_method_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class SpendPointsInput:
    service: str | None = strawberry.field(default=None, description="Catalog service whose cost is spent; or give amount.")
    amount: int | None = None
    service_id: str = strawberry.field(description="The id of what was bought (reading id, consultation id).")
    user_id: strawberry.ID | None = None
    idempotency_key: str | None = None


@strawberry.input
class RewardPointsInput:
    user_id: strawberry.ID
    activity: str
    idempotency_key: str | None = None


@strawberry.input
class AdjustPointsInput:
    user_id: strawberry.ID
    amount: int
    reason: str
    idempotency_key: str | None = None


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
        Root.QUERY, "wallet", "asOf: balances reconstructed from the ledger as they stood at that time."
    ))
    async def wallet(self, info: Info, user_id: strawberry.ID | None = None, as_of: DateTime | None = None) -> Wallet:
        user = permissions.subject(info, user_id, as_of=as_of is not None)
        return await load_wallet(info, user, as_of)


@strawberry.type
class WalletMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "purchasePoints", "Charged to the caller's own payment method."
    ))
    async def purchase_points(self, info: Info, input: PurchasePointsInput) -> PointPurchase:
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

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "spendPoints"))
    async def spend_points(self, info: Info, input: SpendPointsInput) -> SpendResult:
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

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "rewardPoints", "(SYSTEM: the service scope.)"))
    async def reward_points(self, info: Info, input: RewardPointsInput) -> PointTransaction:
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

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "adjustPoints"))
    async def adjust_points(self, info: Info, input: AdjustPointsInput) -> PointTransaction:
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

