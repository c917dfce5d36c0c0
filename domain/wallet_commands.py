"""Wallet commands of the ledger (SPEC §4): spend, reward, adjust, expire."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import DomainError, InvalidInput
from domain.idempotency import Idempotency
from domain.ids import service_spend_id, wallet_id
from domain.periods import local_date
from domain.transactions import transaction_from_event
from domain.service_spend import ServiceSpend
from domain.wallet import EXPIRY_NOTICE, check_positive

if TYPE_CHECKING:
    from domain.ledger import Ledger


class WalletCommands:
    """Handed the ledger; `ledger.wallets`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def spend_points(
        self: Ledger,
        user_id: str,
        *,
        service: str | None,
        amount: int | None,
        service_id: str,
        now: datetime,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Spend for one bought service; returns {"transaction", "remaining_balance"}.
        The same `service_id` twice answers the first spend and spends once."""
        if (service is None) == (amount is None):
            raise InvalidInput("give exactly one of service or amount")
        cost = self.ledger.catalog.service_cost(service) if service is not None else amount
        check_positive(cost)
        if not service_id or not service_id.strip():
            raise InvalidInput("serviceId must not be empty")

        record_id = service_spend_id(user_id, service_id)
        attempts = 0

        def earlier() -> dict[str, Any] | None:
            record = self.ledger.load(ServiceSpend, record_id)
            return self.spend_result(user_id, record.wallet_version) if record is not None else None

        def body() -> tuple[dict[str, Any], list[Any]]:
            # Optimistic: a first attempt does not look for an earlier spend of this
            # service (two reads that almost always find nothing); a repeat's record
            # collides on insert (version 1 of the same id), nothing of the attempt is
            # written, and the retry below finds the first spend and answers it.
            nonlocal attempts
            attempts += 1
            if attempts > 1 and (found := earlier()) is not None:
                return found, []
            wallet = self.ledger.wallet_or_new(user_id, now)
            try:
                wallet.debit(
                    type="USAGE",
                    amount=cost,
                    at=now,
                    description=f"spent on {service}" if service else "spent",
                    reference_type=service or "amount",
                    reference_id=service_id,
                    service_id=service_id,
                )
            except DomainError:
                # A repeat answers the first spend even if the wallet could not pay it again.
                if attempts == 1 and (found := earlier()) is not None:
                    return found, []
                raise
            record = ServiceSpend(user_id=user_id, service_id=service_id, wallet_version=wallet.version, at=now)
            return _spend_result(wallet.pending_events[-1], user_id), [wallet, record]

        request = {"service": service, "amount": amount, "serviceId": service_id}
        return self.ledger.run(
            body,
            lock=[wallet_id(user_id)],
            idempotency=Idempotency(user_id, "spendPoints", idempotency_key, request, now),
            replay=lambda stored: self.spend_result(user_id, stored["wallet_version"]),
            encode=lambda result: {"wallet_version": result["transaction"]["wallet_version"]},
        )

    def spend_result(self, user_id: str, version: int) -> dict[str, Any]:
        """The answer of an earlier spend, read back from its event (repeats answer the first result)."""
        events = list(self.ledger.repository.event_store.get(wallet_id(user_id), gt=version - 1, lte=version))
        return _spend_result(events[0], user_id)

    def reward_points(
        self, user_id: str, activity: str, *, now: datetime, actor: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        reward = self.ledger.catalog.reward(activity)

        def body() -> tuple[int, list[Any]]:
            wallet = self.ledger.wallet_or_new(user_id, now)
            wallet.reward(
                activity, reward.points, reward.once_per_day, reward.once_per_user, local_date(now, self.ledger.tz), now
            )
            return _last_transaction(wallet, user_id), [wallet]

        return self._wallet_command(user_id, "rewardPoints", actor, idempotency_key, {"userId": user_id, "activity": activity}, now, body)

    def adjust_points(
        self: Ledger,
        user_id: str,
        amount: int,
        reason: str,
        *,
        now: datetime,
        actor: str,
        idempotency_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Credit (no expiry unless given) or debit points by hand; a debit cannot exceed the usable balance."""
        if amount == 0:
            raise InvalidInput("amount must not be zero")
        if not reason or not reason.strip():
            raise InvalidInput("reason must not be empty")

        def body() -> tuple[int, list[Any]]:
            wallet = self.ledger.wallet_or_new(user_id, now)
            common = {"type": "ADJUSTMENT", "at": now, "description": reason, "reference_type": "adjustment"}
            if amount > 0:
                wallet.credit(amount=amount, expires_at=expires_at, reference_id=actor, **common)
            else:
                wallet.debit(amount=-amount, reference_id=actor, **common)
            return _last_transaction(wallet, user_id), [wallet]

        request = {"userId": user_id, "amount": amount, "reason": reason}
        return self._wallet_command(user_id, "adjustPoints", actor, idempotency_key, request, now, body)

    def expire_wallet_points(self, user_id: str, now: datetime) -> int:
        """Sweep the user's expired lots; returns the points expired (0 when nothing was due)."""

        def body() -> tuple[int, list[Any]]:
            wallet = self.ledger.wallet(user_id)
            if wallet is None:
                return 0, []
            return wallet.expire_due_lots(now), [wallet]

        return self.ledger.run(body, lock=[wallet_id(user_id)])

    def warn_expiring_points(self, user_id: str, now: datetime) -> int:
        """Warn once about each of the user's lots expiring within a week; returns how many."""

        def body() -> tuple[int, list[Any]]:
            wallet = self.ledger.wallet(user_id)
            if wallet is None:
                return 0, []
            return wallet.warn_expiring(now, EXPIRY_NOTICE), [wallet]

        return self.ledger.run(body, lock=[wallet_id(user_id)])

    def _wallet_command(self, user_id, operation, actor, key, request, now, body) -> dict[str, Any]:
        return self.ledger.run(
            body,
            lock=[wallet_id(user_id)],
            idempotency=Idempotency(actor, operation, key, request, now),
            replay=lambda stored: self.ledger.wallet_transaction(user_id, stored["wallet_version"]),
            encode=lambda transaction: {"wallet_version": transaction["wallet_version"]},
        )


def _last_transaction(wallet: Any, user_id: str) -> dict[str, Any]:
    """The transaction the command just recorded, from its pending event (no read back)."""
    transaction = transaction_from_event(wallet.pending_events[-1], user_id)
    assert transaction is not None
    return transaction


def _spend_result(event: Any, user_id: str) -> dict[str, Any]:
    return {"transaction": transaction_from_event(event, user_id), "remaining_balance": event.usable_after}
