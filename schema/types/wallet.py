"""Wallet and point transaction types."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

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
    amount: int = strawberry.field(description="Points taken from the lot.")
    expires_at: DateTime | None = strawberry.field(description="The lot's expiry (null for lots without one, and for draws recorded before lineage was kept).")


@strawberry.type(description="One change of a wallet's points, with the balance before and after.")
class PointTransaction:
    id: strawberry.ID = strawberry.field(description="The transaction's id.")
    user_id: strawberry.ID = strawberry.field(description="The wallet's owner.")
    type: PointTransactionType = strawberry.field(description="Why the points changed.")
    amount: int = strawberry.field(description="Positive credits the wallet, negative debits it.")
    balance_before: int = strawberry.field(description="The wallet's total balance before.")
    balance_after: int = strawberry.field(description="The wallet's total balance after.")
    description: str = strawberry.field(description="In words, e.g. `spent on tarot_three`, or an adjustment's reason.")
    reference_type: str | None = strawberry.field(
        description="What it refers to: payment, activity, adjustment, the service spent on (or amount)."
    )
    reference_id: str | None = strawberry.field(
        description="The id of that: a payment id, an activity, the serviceId of a spend."
    )
    created_at: DateTime = strawberry.field(description="When it happened.")
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


@strawberry.type(description="Points of one lot that expire soon.")
class ExpiringPoints:
    amount: int = strawberry.field(description="Points left in the lot.")
    expires_at: DateTime = strawberry.field(description="When they expire.")


@strawberry.type(description="A page of wallet transactions.")
class PointTransactionConnection:
    items: list[PointTransaction] = strawberry.field(description="The page, newest first.")
    total_count: int = strawberry.field(description="Transactions matching the filter, across every page.")
    next_cursor: str | None = strawberry.field(description="Opaque cursor for the next page; null on the last page.")


@strawberry.input(description="Which wallet transactions to list; every field is optional.")
class PointTransactionFilter:
    type: PointTransactionType | None = strawberry.field(default=None, description="Only this type.")
    from_: DateTime | None = strawberry.field(default=None, name="from", description="Only at or after this time.")
    to: DateTime | None = strawberry.field(default=None, description="Only before this time (exclusive).")


@strawberry.type(description=(
    "A user's point wallet. Balances and lots are read from the ledger (read-your-writes); `transactions` "
    "comes from the history read model and may lag by the projection delay."
))
class Wallet:
    user_id: strawberry.ID = strawberry.field(description="The owner.")
    total_balance: int = strawberry.field(description="All points held, expired-but-not-yet-swept lots included.")
    usable_balance: int = strawberry.field(description="Points that can be spent now (not expired).")
    pending_balance: int = strawberry.field(description="Points bought whose payment is not yet confirmed.")
    lifetime_earned: int = strawberry.field(description="Sum of every credit (purchases, rewards, positive adjustments).")
    lifetime_spent: int = strawberry.field(description="Sum of every debit other than expiry (spends, refunds, negative adjustments).")
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
    def expiring_soon(
        self,
        within_days: Annotated[int | None, strawberry.argument(
            description=f"The window in days from now, 0 to {MAX_EXPIRING_WINDOW_DAYS} (else BAD_USER_INPUT)."
        )] = 30,
    ) -> list[ExpiringPoints]:
        within_days = 30 if within_days is None else within_days
        if within_days < 0 or within_days > MAX_EXPIRING_WINDOW_DAYS:
            raise InvalidInput(f"withinDays must be between 0 and {MAX_EXPIRING_WINDOW_DAYS}")
        horizon = self.now + timedelta(days=within_days)
        return [
            ExpiringPoints(amount=lot["remaining"], expires_at=lot["expires_at"])
            for lot in self.lots
            if lot["expires_at"] is not None and lot["expires_at"] <= horizon
        ]

    @strawberry.field(description=(
        "The wallet's transactions, newest first, from the history read model: a write may take a moment "
        f"(the projection delay) to appear. {pages.TRANSACTIONS.describe()} Errors: BAD_USER_INPUT."
    ))
    async def transactions(
        self,
        info: Info,
        filter: Annotated[PointTransactionFilter | None, strawberry.argument(description="Type and time filter.")] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = pages.TRANSACTIONS.default,
        after: Annotated[str | None, strawberry.argument(
            description="The nextCursor of the previous page; omit for the first page."
        )] = None,
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


@strawberry.type(description="The result of purchasePoints.")
class PointPurchase:
    payment: Payment = strawberry.field(description="The charge (SUCCEEDED; PENDING while the provider's answer is unknown).")
    points_purchased: int = strawberry.field(description="Points of the package.")
    bonus_points: int = strawberry.field(description="Bonus points of the package.")
    total_points: int = strawberry.field(description="pointsPurchased + bonusPoints, credited as one lot once paid.")
    wallet: Wallet = strawberry.field(description="The wallet after the purchase.")


@strawberry.type(description="The result of spendPoints (the first result again for a repeated serviceId).")
class SpendResult:
    transaction: PointTransaction = strawberry.field(description="The USAGE transaction.")
    points_spent: int = strawberry.field(description="Points taken.")
    remaining_balance: int = strawberry.field(description="Usable points left after the spend.")
    #: Signs the grant; called only when the field is asked for (an HMAC per spend otherwise).
    grant: strawberry.Private[Callable[[], str]]

    @strawberry.field(description="Opaque grant for the service bought, to hand to the service that was paid for.")
    def service_access_token(self) -> str:
        return self.grant()
