"""Wallet and point transaction types."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import strawberry

from domain.errors import InvalidInput
from domain.wallet import Wallet as WalletAggregate
from schema import pages
from schema.context import Info
from schema.scalars import DateTime
from schema.types.enums import PointTransactionType
from schema.types.payments import Payment

MAX_EXPIRING_WINDOW_DAYS = 3650


@strawberry.type(description="Points a debit or an expiry took from one lot (FIFO by expiry).")
class LotDraw:
    lot_id: str = strawberry.field(description="The lot: a purchase's lot, a reward, an adjustment.")
    amount: int
    expires_at: DateTime | None = strawberry.field(description="The lot's expiry (null for lots without one, and for draws recorded before lineage was kept).")


@strawberry.type
class PointTransaction:
    id: strawberry.ID
    user_id: strawberry.ID
    type: PointTransactionType
    amount: int = strawberry.field(description="Positive credits the wallet, negative debits it.")
    balance_before: int
    balance_after: int
    description: str
    reference_type: str | None
    reference_id: str | None
    created_at: DateTime
    expires_at: DateTime | None = strawberry.field(description="For credits: when these points expire.")
    wallet_version: strawberry.Private[int]

    @strawberry.field(description=(
        "Lineage: the lots this debit, refund or expiry took its points from, and how many from each "
        "(empty for credits). Follow a lot id back to the credit that created it."
    ))
    async def drawn_from(self, info: Info) -> list[LotDraw]:
        # Read from the ledger's event, only when asked for: the history read model keeps no lineage.
        services = info.context.services
        draws = await services.run_sync(services.ledger.wallet_lineage, str(self.user_id), self.wallet_version)
        return [LotDraw(lot_id=d["lot_id"], amount=d["amount"], expires_at=d["expires_at"]) for d in draws]

    @classmethod
    def of(cls, tx: dict[str, Any]) -> PointTransaction:
        return cls(
            id=strawberry.ID(str(tx["id"])),
            user_id=strawberry.ID(tx["user_id"]),
            type=PointTransactionType(tx["type"]),
            amount=tx["amount"],
            balance_before=tx["balance_before"],
            balance_after=tx["balance_after"],
            description=tx["description"],
            reference_type=tx["reference_type"],
            reference_id=tx["reference_id"],
            created_at=tx["created_at"],
            expires_at=tx["expires_at"],
            wallet_version=tx["wallet_version"],
        )


@strawberry.type
class ExpiringPoints:
    amount: int
    expires_at: DateTime


@strawberry.type
class PointTransactionConnection:
    items: list[PointTransaction]
    total_count: int
    next_cursor: str | None = strawberry.field(description="Opaque cursor for the next page; null on the last page.")


@strawberry.input
class PointTransactionFilter:
    type: PointTransactionType | None = None
    from_: DateTime | None = strawberry.field(default=None, name="from")
    to: DateTime | None = None


@strawberry.type
class Wallet:
    user_id: strawberry.ID
    total_balance: int = strawberry.field(description="All points held, expired-but-not-yet-swept lots included.")
    usable_balance: int = strawberry.field(description="Points that can be spent now (not expired).")
    pending_balance: int = strawberry.field(description="Points bought whose payment is not yet confirmed.")
    lifetime_earned: int
    lifetime_spent: int
    version: int = strawberry.field(description="Ledger stream version: the number of events recorded for this wallet.")
    lots: strawberry.Private[list[dict[str, Any]]]
    now: strawberry.Private[datetime]
    as_of: strawberry.Private[datetime | None]

    @classmethod
    def of(cls, user_id: str, wallet: WalletAggregate | None, now: datetime, as_of: datetime | None = None) -> Wallet:
        if wallet is None:
            return cls(
                user_id=strawberry.ID(user_id), total_balance=0, usable_balance=0, pending_balance=0,
                lifetime_earned=0, lifetime_spent=0, version=0, lots=[], now=now, as_of=as_of,
            )
        return cls(
            user_id=strawberry.ID(user_id),
            total_balance=wallet.total_balance,
            usable_balance=wallet.usable_balance(now),
            pending_balance=wallet.pending_balance,
            lifetime_earned=wallet.lifetime_earned,
            lifetime_spent=wallet.lifetime_spent,
            version=wallet.version,
            lots=wallet.usable_lots(now),
            now=now,
            as_of=as_of,
        )

    @strawberry.field(description="Lots with points left that expire within the window, soonest first.")
    def expiring_soon(self, within_days: int | None = 30) -> list[ExpiringPoints]:
        within_days = 30 if within_days is None else within_days
        if within_days < 0 or within_days > MAX_EXPIRING_WINDOW_DAYS:
            raise InvalidInput(f"withinDays must be between 0 and {MAX_EXPIRING_WINDOW_DAYS}")
        horizon = self.now + timedelta(days=within_days)
        return [
            ExpiringPoints(amount=lot["remaining"], expires_at=lot["expires_at"])
            for lot in self.lots
            if lot["expires_at"] is not None and lot["expires_at"] <= horizon
        ]

    @strawberry.field(description=f"Newest first. {pages.TRANSACTIONS.describe()}")
    async def transactions(
        self,
        info: Info,
        filter: PointTransactionFilter | None = None,
        first: int | None = pages.TRANSACTIONS.default,
        after: str | None = None,
    ) -> PointTransactionConnection:
        services = info.context.services
        to = filter.to if filter else None
        if self.as_of is not None:
            to = min(to, self.as_of) if to else self.as_of
        items, total, cursor = await services.run_sync(
            services.history.history,
            str(self.user_id),
            type=filter.type.value if filter and filter.type else None,
            from_=filter.from_ if filter else None,
            to=to,
            first=pages.TRANSACTIONS.of(first),
            after=after,
        )
        return PointTransactionConnection(
            items=[PointTransaction.of(tx) for tx in items], total_count=total, next_cursor=cursor
        )


@strawberry.type
class PointPurchase:
    payment: Payment
    points_purchased: int
    bonus_points: int
    total_points: int
    wallet: Wallet


@strawberry.type
class SpendResult:
    transaction: PointTransaction
    points_spent: int
    remaining_balance: int
    #: Signs the grant; called only when the field is asked for (an HMAC per spend otherwise).
    grant: strawberry.Private[Callable[[], str]]

    @strawberry.field(description="Opaque grant for the service bought, to hand to the service that was paid for.")
    def service_access_token(self) -> str:
        return self.grant()
