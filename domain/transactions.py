"""Wallet events seen as point transactions (the contract's PointTransaction).

One function shared by the ledger (a spend answers its own transaction) and the
history projection, so both describe an event the same way. A transaction's id is
derived from its wallet and the event's version (`domain.ids.transaction_id`), so the
projection stores neither and derives it when read (`wallet_transaction_id`).
"""
from __future__ import annotations

from typing import Any

from domain.ids import transaction_id, wallet_id
from domain.wallet import Wallet


#: The fields of a transaction, in the order `transaction_values` gives them.
TRANSACTION_FIELDS = (
    "id", "user_id", "wallet_version", "type", "amount", "balance_before", "balance_after",
    "description", "reference_type", "reference_id", "created_at", "expires_at",
)


def transaction_from_event(event: Any, user_id: str) -> dict[str, Any] | None:
    """The transaction a wallet event records, or None for events that move no points."""
    values = transaction_values(event, user_id)
    return dict(zip(TRANSACTION_FIELDS, values)) if values is not None else None


def wallet_transaction_id(user_id: str, wallet_version: int) -> str:
    """The id of the transaction recorded by `user_id`'s wallet at `wallet_version`."""
    return transaction_id(wallet_id(user_id), wallet_version)


def transaction_values(event: Any, user_id: str) -> tuple[Any, ...] | None:
    """`transaction_from_event` as a tuple in `TRANSACTION_FIELDS` order."""
    movement = movement_values(event)
    if movement is None:
        return None
    return (transaction_id(event.originator_id, event.originator_version), user_id, *movement)


#: The fields `movement_values` gives: `TRANSACTION_FIELDS` without the id and the user,
#: which the history projection derives (the id from the user's wallet and the version).
MOVEMENT_FIELDS = TRANSACTION_FIELDS[2:]


def movement_values(event: Any) -> tuple[Any, ...] | None:
    """What a wallet event moved, in `MOVEMENT_FIELDS` order, or None for events that move
    no points. The history projection writes one row per wallet event, millions in a
    rebuild: a dict per event, or the transaction's hashed id, cost as much as everything
    else it does per event."""
    kind = type(event)
    # The classes @event makes are never subclassed, so the common two are told apart by identity.
    if kind is Wallet.Debited:
        amount = event.amount
        return (
            event.originator_version, event.type, -amount, event.balance_after + amount, event.balance_after,
            event.description, event.reference_type, event.reference_id, event.at, None,
        )
    if kind is Wallet.Credited:
        amount = event.amount
        return (
            event.originator_version, event.type, amount, event.balance_after - amount, event.balance_after,
            event.description, event.reference_type, event.reference_id, event.at, event.expires_at,
        )
    if isinstance(event, Wallet.Expired):
        return (
            event.originator_version, "EXPIRATION", -event.amount, event.balance_after + event.amount,
            event.balance_after, f"points expired ({event.lot_id})", "lot", event.lot_id, event.at, None,
        )
    if isinstance(event, Wallet.LotRestored):  # a refused refund gave the points back
        return (
            event.originator_version, "REFUND", event.amount, event.balance_after - event.amount, event.balance_after,
            event.description, "payment", event.reference_id, event.at, event.expires_at,
        )
    return None


def lineage_of(event: Any) -> list[dict[str, Any]]:
    """The lots a debit or an expiry took its points from, and how many from each (FIFO by
    expiry, SPEC §4); empty for credits. Debits recorded before lineage was kept name their
    lots without the expiry."""
    if isinstance(event, Wallet.Debited):
        return [{"lot_id": d[0], "amount": d[1], "expires_at": d[2] if len(d) > 2 else None} for d in event.draws]
    if isinstance(event, Wallet.Expired):
        return [{"lot_id": event.lot_id, "amount": event.amount, "expires_at": event.expires_at}]
    return []
