"""Replaying every aggregate from its events, and what each read model must agree with.

The replay uses nothing but the events: no snapshot, no cache, the same
`mutate` the domain uses. Read-model rows are checked only against
aggregates whose last event the read model had already applied in the
snapshot (`last_position`), so a write that landed during the audit is
never reported as a mismatch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.payments.payment import Payment
from domain.wallet import Wallet
from projections.aggregates import aggregate_type
from projections.wallet_history import to_utc_text


@dataclass
class Replay:
    events: int = 0
    aggregates: dict[str, Any] = field(default_factory=dict)
    last_position: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    #: (wallet id, lot id) -> points credited to the lot minus every draw on it, from the events alone.
    lot_flows: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Aggregates an event of which could not be decoded or applied: a finding, and no longer replayed.
    broken: set[str] = field(default_factory=set)

    def settled(self, aggregate_id: str, position: int) -> Any:
        """The replayed aggregate if its whole history is at or before `position`, else None."""
        if self.last_position.get(aggregate_id, 0) > position:
            return None
        return self.aggregates.get(aggregate_id)

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        """Replay decoded events, (ledger position, event) in log order."""
        for position, event in events:
            key = self._count(event.originator_id, position)
            if key in self.broken:
                continue
            try:
                self.types.setdefault(key, aggregate_type(event))
                self.aggregates[key] = event.mutate(self.aggregates.get(key))
                if isinstance(event, Wallet.Event):
                    account_lots(self.lot_flows, key, event)
            except Exception as error:  # an aggregate that cannot be replayed is itself a finding
                self._break(key, event.originator_version, error)

    def undecodable(self, notification: Any, error: Exception) -> None:
        key = self._count(notification.originator_id, notification.id)
        if key not in self.broken:
            self._break(key, notification.originator_version, error)

    def _count(self, originator_id: Any, position: int) -> str:
        key = str(originator_id)
        self.events += 1
        self.last_position[key] = position
        return key

    def _break(self, key: str, version: int, error: Exception) -> None:
        self.broken.add(key)
        self.aggregates.pop(key, None)
        self.problems.append(f"ledger: aggregate {key} cannot be replayed at version {version}: {error!r}")


def replay_ledger(
    ledger: Any, batch_size: int, progress: Callable[[int, int, int], None] | None, *,
    replay: Replay | None = None, after: int = 0,
) -> Replay:
    """Replay the log after position `after` (default: all of it) into `replay` (default: a new one)."""
    replay = replay if replay is not None else Replay()
    head = ledger.recorder.max_notification_id() or 0
    position = after
    while position < head:
        notifications = ledger.recorder.select_notifications(
            start=position, limit=batch_size, stop=head, inclusive_of_start=False
        )
        if not notifications:
            break
        _replay_batch(ledger.mapper, notifications, replay)
        position = notifications[-1].id
        if progress is not None:
            progress(replay.events, position, head)
    return replay


def _replay_batch(mapper: Any, notifications: Sequence[Any], replay: Replay) -> None:
    """Decoded as one batch (the keys of its sealed fields in one lookup, not one per event);
    one by one when that fails, so the event that cannot be decoded is named and the rest count."""
    try:
        events = mapper.to_domain_events(notifications)
    except Exception:
        for n in notifications:
            try:
                event = mapper.to_domain_event(n)
            except Exception as error:
                replay.undecodable(n, error)
            else:
                replay.apply([(n.id, event)])
        return
    replay.apply(zip((n.id for n in notifications), events))


def account_lots(flows: dict[tuple[str, str], int], wallet: str, event: Any) -> None:
    """Lineage: a lot gains its credit (or a refused refund's restore) and loses each draw."""
    if isinstance(event, (Wallet.Credited, Wallet.LotRestored)):
        flows[(wallet, event.lot_id)] = flows.get((wallet, event.lot_id), 0) + event.amount
    elif isinstance(event, Wallet.Debited):
        for lot_id, taken, *_ in event.draws:
            flows[(wallet, lot_id)] = flows.get((wallet, lot_id), 0) - taken
    elif isinstance(event, Wallet.Expired):
        flows[(wallet, event.lot_id)] = flows.get((wallet, event.lot_id), 0) - event.amount


def check_lineage(replay: Replay) -> Iterator[str]:
    """Every lot's remainder equals its credit minus its draws (SPEC §4: points never appear
    or vanish between the purchase or reward that created them and what ended them)."""
    for (wallet_key, lot_id), flow in sorted(replay.lot_flows.items()):
        wallet = replay.aggregates.get(wallet_key)
        if wallet is None:
            continue
        held = wallet.lots.get(lot_id, {}).get("remaining", 0)
        if flow != held or flow < 0:
            yield (
                f"ledger: wallet of {wallet.user_id}, lot {lot_id}: credited minus drawn is {flow},"
                f" the wallet holds {held}"
            )


def check_payments(snapshot: Any, replay: Replay) -> Iterator[str]:
    _, rows = snapshot.tables.get("payments", ([], []))
    seen = set()
    for row in rows:
        seen.add(row["payment_id"])
        payment = replay.settled(row["payment_id"], snapshot.position)
        if payment is None:
            continue
        expected = {
            "user_id": payment.user_id, "order_id": payment.order_id, "kind": payment.kind, "status": payment.status,
            "amount": payment.amount, "refunded_amount": payment.refunded_amount,
            "subscription_id": payment.subscription_id, "created_at": to_utc_text(payment.created_at),
            "receipt_url": payment.receipt_url,
        }
        for column, value in expected.items():
            if row[column] != value:
                yield f"payments: payments payment_id={row['payment_id']}: {column} is {row[column]!r} in the read model, {value!r} in the ledger"
    for key, payment in replay.aggregates.items():
        if isinstance(payment, Payment) and key not in seen and replay.settled(key, snapshot.position) is not None:
            yield f"payments: payments payment_id={key}: missing from the read model"


def check_wallets(snapshot: Any, replay: Replay) -> Iterator[str]:
    _, lots = snapshot.tables.get("wallet_lots", ([], []))
    _, transactions = snapshot.tables.get("wallet_transactions", ([], []))
    wallets = {
        w.user_id: w
        for key, w in replay.aggregates.items()
        if isinstance(w, Wallet) and replay.settled(key, snapshot.position) is not None
    }
    rows_by_user: dict[str, dict[str, int]] = {}
    for row in lots:
        rows_by_user.setdefault(row["user_id"], {})[row["lot_id"]] = int(row["remaining"])
    for user_id, wallet in wallets.items():
        held = {lot_id: lot["remaining"] for lot_id, lot in wallet.lots.items()}
        rows = rows_by_user.get(user_id, {})
        for lot_id in sorted(held.keys() | {k for k, v in rows.items() if v}):
            if rows.get(lot_id) != held.get(lot_id, 0):
                yield (
                    f"wallet_history: wallet_lots user_id={user_id}, lot_id={lot_id}: remaining is {rows.get(lot_id)!r}"
                    f" in the read model, {held.get(lot_id, 0)!r} in the ledger"
                )
    newest: dict[str, dict[str, Any]] = {}
    for row in transactions:
        if row["user_id"] not in newest or row["seq"] > newest[row["user_id"]]["seq"]:
            newest[row["user_id"]] = row
    for user_id, wallet in wallets.items():
        row = newest.get(user_id)
        balance = row["balance_after"] if row else 0
        if balance != wallet.total_balance:
            yield (
                f"wallet_history: wallet_transactions user_id={user_id}: the newest balance_after is {balance!r}"
                f" in the read model, the wallet holds {wallet.total_balance!r} in the ledger"
            )


def check_aggregates(snapshot: Any, replay: Replay) -> Iterator[str]:
    table = next((t for t in snapshot.tables if t.endswith("ledger_aggregates")), None)
    if table is None:
        return
    _, rows = snapshot.tables[table]
    indexed = {row["aggregate_id"]: row for row in rows}
    for key, aggregate in replay.aggregates.items():
        if replay.settled(key, snapshot.position) is None:
            continue
        row = indexed.get(key)
        if row is None:
            yield f"aggregates: ledger_aggregates aggregate_id={key}: missing from the read model"
            continue
        expected_user = getattr(aggregate, "user_id", None)
        if row["aggregate_type"] != replay.types[key] or row["user_id"] != (expected_user if isinstance(expected_user, str) else None):
            yield (
                f"aggregates: ledger_aggregates aggregate_id={key}: ({row['aggregate_type']}, {row['user_id']})"
                f" in the read model, ({replay.types[key]}, {expected_user}) in the ledger"
            )


#: Read model name -> its check against the replayed aggregates.
RULES: dict[str, Callable[[Any, Replay], Iterator[str]]] = {
    "payments": check_payments,
    "wallet_history": check_wallets,
    "aggregates": check_aggregates,
}
