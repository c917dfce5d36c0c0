"""Wallet events seen as point transactions (the contract's PointTransaction).

One function shared by the ledger (a spend answers its own transaction) and the
history projection, so both describe an event the same way.
"""
from __future__ import annotations

from typing import Any

from domain.ids import transaction_id
from domain.wallet import Wallet


def transaction_from_event(event: Any, user_id: str) -> dict[str, Any] | None:
    """The transaction a wallet event records, or None for events that move no points."""
    if isinstance(event, Wallet.Credited):
        amount = event.amount
        expires_at = event.expires_at
    elif isinstance(event, Wallet.Debited):
        amount = -event.amount
        expires_at = None
    elif isinstance(event, Wallet.Expired):
        amount = -event.amount
        expires_at = None
    elif isinstance(event, Wallet.LotRestored):  # a refused refund gave the points back
        amount = event.amount
        expires_at = event.expires_at
    else:
        return None
    is_expiry = isinstance(event, Wallet.Expired)
    return {
        "id": transaction_id(event.originator_id, event.originator_version),
        "user_id": user_id,
        "wallet_version": event.originator_version,
        "type": "EXPIRATION" if is_expiry else "REFUND" if isinstance(event, Wallet.LotRestored) else event.type,
        "amount": amount,
        "balance_before": event.balance_after - amount,
        "balance_after": event.balance_after,
        "description": f"points expired ({event.lot_id})" if is_expiry else event.description,
        "reference_type": "lot" if is_expiry else "payment" if isinstance(event, Wallet.LotRestored) else event.reference_type,
        "reference_id": event.lot_id if is_expiry else event.reference_id,
        "created_at": event.at,
        "expires_at": expires_at,
    }


def lineage_of(event: Any) -> list[dict[str, Any]]:
    """The lots a debit or an expiry took its points from, and how many from each (FIFO by
    expiry, SPEC §4); empty for credits. Debits recorded before lineage was kept name their
    lots without the expiry."""
    if isinstance(event, Wallet.Debited):
        return [{"lot_id": d[0], "amount": d[1], "expires_at": d[2] if len(d) > 2 else None} for d in event.draws]
    if isinstance(event, Wallet.Expired):
        return [{"lot_id": event.lot_id, "amount": event.amount, "expires_at": event.expires_at}]
    return []
