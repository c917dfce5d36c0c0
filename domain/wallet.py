"""The point wallet: points held in lots, each with its own expiry.

Every credit is a lot; a spend draws from the lot that expires first (ties:
oldest first; lots without expiry last) and records which lots it drew from, so
replaying the events reproduces every lot exactly. Each recorded event carries
`balance_after` (the total held) so the history projection and an auditor can
read the running balance without re-deriving it.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.ids import wallet_id

from domain.errors import AlreadyClaimed, InsufficientPoints, InvalidInput

LOT_LIFETIME = timedelta(days=365)
#: A lot's POINTS_EXPIRING notice goes out this long before it expires (SPEC §4).
EXPIRY_NOTICE = timedelta(days=7)


class Wallet(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(user_id: str, **_: Any) -> UUID:
        return wallet_id(user_id)

    @event("Opened")
    def __init__(self, user_id: str, at: datetime) -> None:
        self.user_id = user_id
        self.opened_at = at
        # lot id -> {"id", "type", "amount", "remaining", "credited_at", "expires_at", "reference_id"}
        self.lots: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, int] = {}  # payment id -> points awaiting that payment
        self.lifetime_earned = 0
        self.lifetime_spent = 0
        self.daily_claims: dict[str, str] = {}  # activity -> local date (ISO) last claimed
        self.once_claims: list[str] = []

    # ------------------------------------------------------------ reads
    @property
    def total_balance(self) -> int:
        return sum(lot["remaining"] for lot in self.lots.values())

    def usable_lots(self, now: datetime) -> list[dict[str, Any]]:
        """Lots that can be spent now, in spending order."""
        far = datetime.max.replace(tzinfo=now.tzinfo)
        live = [lot for lot in self.lots.values() if lot["remaining"] > 0 and _is_live(lot, now)]
        return sorted(live, key=lambda lot: (lot["expires_at"] or far, lot["credited_at"]))

    def usable_balance(self, now: datetime) -> int:
        return sum(lot["remaining"] for lot in self.usable_lots(now))

    @property
    def pending_balance(self) -> int:
        return sum(self.pending.values())

    def expired_lots(self, now: datetime) -> list[dict[str, Any]]:
        return [lot for lot in self.lots.values() if lot["remaining"] > 0 and not _is_live(lot, now)]

    # ------------------------------------------------------------ commands
    def credit(
        self,
        *,
        type: str,
        amount: int,
        at: datetime,
        description: str,
        expires_at: datetime | None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        lot_id: str | None = None,
        claim: dict[str, str] | None = None,
    ) -> None:
        check_positive(amount)
        self._credited(
            lot_id=lot_id or f"lot-{self.version + 1}",
            type=type,
            amount=amount,
            balance_after=self.total_balance + amount,
            description=description,
            reference_type=reference_type,
            reference_id=reference_id,
            expires_at=expires_at,
            claim=claim,
            at=at,
        )

    def reward(self, activity: str, points: int, once_per_day: bool, once_per_user: bool, day: date, at: datetime) -> None:
        if once_per_user and activity in self.once_claims:
            raise AlreadyClaimed(f"{activity} can be earned once per user")
        if once_per_day and self.daily_claims.get(activity) == day.isoformat():
            raise AlreadyClaimed(f"{activity} was already earned on {day.isoformat()}")
        self.credit(
            type="REWARD",
            amount=points,
            at=at,
            description=f"reward: {activity}",
            expires_at=at + LOT_LIFETIME,
            reference_type="activity",
            reference_id=activity,
            claim={"activity": activity, "day": day.isoformat(), "once": "y" if once_per_user else "n"},
        )

    def debit(
        self,
        *,
        type: str,
        amount: int,
        at: datetime,
        description: str,
        reference_type: str | None = None,
        reference_id: str | None = None,
        service_id: str | None = None,
    ) -> None:
        """Draw `amount` from usable lots, earliest expiry first; all or nothing."""
        check_positive(amount)
        available = self.usable_balance(at)
        if amount > available:
            raise InsufficientPoints(available=available, required=amount)
        draws: list[list[Any]] = []
        left = amount
        for lot in self.usable_lots(at):
            take = min(left, lot["remaining"])
            draws.append([lot["id"], take, lot["expires_at"]])  # lineage: which lot paid, and its expiry
            left -= take
            if left == 0:
                break
        self._debited(
            type=type,
            amount=amount,
            draws=draws,
            balance_after=self.total_balance - amount,
            usable_after=available - amount,
            description=description,
            reference_type=reference_type,
            reference_id=reference_id,
            service_id=service_id,
            at=at,
        )

    def take_back_lot(self, lot_id: str, at: datetime, description: str, reference_id: str) -> int:
        """Remove what is left of one lot (refund of a points purchase); returns the points removed."""
        lot = self.lots.get(lot_id)
        remaining = lot["remaining"] if lot else 0
        if remaining > 0:
            self._debited(
                type="REFUND",
                amount=remaining,
                draws=[[lot_id, remaining, lot["expires_at"]]],
                balance_after=self.total_balance - remaining,
                usable_after=self.usable_balance(at) - (remaining if _is_live(lot, at) else 0),
                description=description,
                reference_type="payment",
                reference_id=reference_id,
                service_id=None,
                at=at,
            )
        return remaining

    @property
    def taken_back(self) -> dict[str, dict[str, Any]]:
        """Lots emptied by a refund, as they were, until the refund settles (wallets
        snapshotted before refunds were movements lack the attribute)."""
        return self.__dict__.setdefault("_taken_back", {})

    def restore_lot(self, lot_id: str, points: int, at: datetime, description: str, reference_id: str) -> None:
        """A refused refund gives back the points it took from lot `lot_id`, with the lot's expiry."""
        lot = self.taken_back.get(lot_id) or self.lots.get(lot_id)
        if lot is not None and points > 0:
            self._lot_restored(
                lot_id=lot_id, amount=points, lot_amount=lot["amount"], type=lot["type"], expires_at=lot["expires_at"],
                credited_at=lot["credited_at"], balance_after=self.total_balance + points, description=description,
                reference_id=reference_id, at=at,
            )

    def expire_due_lots(self, now: datetime) -> int:
        """Sweep every lot past its expiry into an EXPIRATION transaction; returns the points expired."""
        swept = 0
        for lot in sorted(self.expired_lots(now), key=lambda lot: (lot["expires_at"], lot["credited_at"])):
            swept += lot["remaining"]
            self._expired(
                lot_id=lot["id"],
                amount=lot["remaining"],
                balance_after=self.total_balance - lot["remaining"],
                expires_at=lot["expires_at"],
                at=now,
            )
        return swept

    def warn_expiring(self, now: datetime, within: timedelta) -> int:
        """Record a warning for each live lot expiring within `within` that has had none
        (the POINTS_EXPIRING notice, SPEC §4); returns how many were warned."""
        due = [
            lot
            for lot in self.usable_lots(now)
            if lot["expires_at"] is not None and lot["expires_at"] <= now + within and not lot.get("warned")
        ]
        for lot in due:
            self._expiry_warned(lot_id=lot["id"], amount=lot["remaining"], expires_at=lot["expires_at"], at=now)
        return len(due)

    def await_purchase(self, payment_id: str, points: int, at: datetime) -> None:
        if payment_id not in self.pending:
            self._purchase_awaited(payment_id=payment_id, points=points, at=at)

    def abandon_purchase(self, payment_id: str, at: datetime) -> None:
        if payment_id in self.pending:
            self._purchase_abandoned(payment_id=payment_id, at=at)

    # ------------------------------------------------------------ events
    @event("Credited")
    def _credited(
        self,
        lot_id: str,
        type: str,
        amount: int,
        balance_after: int,
        description: str,
        reference_type: str | None,
        reference_id: str | None,
        expires_at: datetime | None,
        claim: dict[str, str] | None,
        at: datetime,
    ) -> None:
        self.lots[lot_id] = {
            "id": lot_id,
            "type": type,
            "amount": amount,
            "remaining": amount,
            "credited_at": at,
            "expires_at": expires_at,
            "reference_id": reference_id,
        }
        self.lifetime_earned += amount
        if type == "PURCHASE" and reference_id is not None:
            self.pending.pop(reference_id, None)
        if claim:
            self.daily_claims[claim["activity"]] = claim["day"]
            if claim["once"] == "y":
                self.once_claims.append(claim["activity"])

    @event("Debited")
    def _debited(
        self,
        type: str,
        amount: int,
        draws: list[list[Any]],
        balance_after: int,
        usable_after: int,
        description: str,
        reference_type: str | None,
        reference_id: str | None,
        service_id: str | None,
        at: datetime,
    ) -> None:
        for lot_id, taken, *_ in draws:  # [lot, points, expiry]; events before lineage lack the expiry
            if type == "REFUND":  # kept until the refund settles: a refused one gives the points back
                self.taken_back[lot_id] = dict(self.lots[lot_id])
            self._draw(lot_id, taken)
        if type != "REFUND":
            self.lifetime_spent += amount

    @event("LotRestored")
    def _lot_restored(
        self, lot_id: str, amount: int, lot_amount: int, type: str, expires_at: datetime | None,
        credited_at: datetime, balance_after: int, description: str, reference_id: str, at: datetime,
    ) -> None:
        lot = self.lots.get(lot_id)
        if lot is not None:
            lot["remaining"] += amount
        else:
            self.lots[lot_id] = {"id": lot_id, "type": type, "amount": lot_amount, "remaining": amount,
                                 "credited_at": credited_at, "expires_at": expires_at, "reference_id": reference_id}
        self.taken_back.pop(lot_id, None)

    @event("Expired")
    def _expired(self, lot_id: str, amount: int, balance_after: int, expires_at: datetime, at: datetime) -> None:
        self._draw(lot_id, amount)

    def _draw(self, lot_id: str, points: int) -> None:
        lot = self.lots[lot_id]
        lot["remaining"] -= points
        if lot["remaining"] == 0:
            # An empty lot can never be spent, expired or refunded again: dropping it keeps
            # the wallet's state (and each load and snapshot) as small as its live lots.
            del self.lots[lot_id]

    @event("ExpiryWarned")
    def _expiry_warned(self, lot_id: str, amount: int, expires_at: datetime, at: datetime) -> None:
        self.lots[lot_id]["warned"] = True

    @event("PurchaseAwaited")
    def _purchase_awaited(self, payment_id: str, points: int, at: datetime) -> None:
        self.pending[payment_id] = points

    @event("PurchaseAbandoned")
    def _purchase_abandoned(self, payment_id: str, at: datetime) -> None:
        self.pending.pop(payment_id, None)


def _is_live(lot: dict[str, Any], now: datetime) -> bool:
    return lot["expires_at"] is None or lot["expires_at"] > now


def check_positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidInput(f"amount must be a positive whole number, got {amount!r}")


__all__ = ["LOT_LIFETIME", "Wallet", "check_positive"]
