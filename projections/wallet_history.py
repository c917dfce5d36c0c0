"""Wallet history (SPEC §4 "History") and the lots the expiry job sweeps.

Tables (names take the projection's prefix, so a rebuild can fill a second
set beside the live one):
- `wallet_owners`: wallet id -> user id. Only `Wallet.Opened` names the user;
  later events carry just the wallet id.
- `wallet_transactions`: one row per point-moving wallet event, described by
  `domain.transactions.movement_values` exactly as the ledger answers it;
  `seq` is the notification id (global log order, newest first = seq DESC) and the key:
  rows arrive in `seq` order, so they are appended (on SQLite the table is stored by it,
  as its rowid), where the transaction `id`, a hash, would be inserted at a random place.
  The id is not stored: it is derived from the user and `wallet_version` when read
  (`domain.transactions.wallet_transaction_id`), as the ledger derives it.
- `wallet_lots`: what is left of each lot, so the expiry job finds wallets with
  lots to sweep without loading every wallet.

Times are stored as fixed-width UTC ISO text (microseconds always present) on
both databases, so text order is time order and the same SQL filters them.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput
from domain.transactions import MOVEMENT_FIELDS, movement_values, wallet_transaction_id
from domain.wallet import Wallet
from projections.database import ViewCursor, ViewDatabase
from projections.event_filter import EventFilter
from projections.keyset import Keyset, scope_of
from projections.runner import Tracked

TRANSACTION_TYPES = frozenset({"PURCHASE", "USAGE", "REWARD", "REFUND", "ADJUSTMENT", "EXPIRATION"})
MAX_PAGE = 500
#: A row: the user, then `movement_values` with its times as text, then `seq`.
_ROW_COLUMNS = ("user_id", *MOVEMENT_FIELDS, "seq")
_COLUMNS = ", ".join(_ROW_COLUMNS[:-1])
_CREATED = MOVEMENT_FIELDS.index("created_at")
assert MOVEMENT_FIELDS[_CREATED + 1] == "expires_at", "the two times come last, in this order"
_WALLET_EVENTS = EventFilter(Wallet.Event)
#: `Wallet.transactions` cursors: newest first by position, scoped to the user and the filter.
CURSORS = Keyset("transactions")


def to_utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        # A naive time has no single meaning across servers; refuse rather than guess.
        raise InvalidInput(f"time {moment.isoformat()} has no time zone")
    if moment.tzinfo is not timezone.utc:  # the ledger's own times already are (decoded "+00:00")
        moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="microseconds")


def _from_utc_text(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


class WalletHistory:
    name = "wallet_history"
    #: The shape and meaning of its tables (projections/versions.py): bump it when they change.
    #: 2: `wallet_transactions` keyed by `seq` instead of `id`.
    #: 3: its `id` is no longer stored (derived when read).
    version = 3

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.tracking_name = prefix + self.name
        self.owners = prefix + "wallet_owners"
        self.transactions = prefix + "wallet_transactions"
        self.lots = prefix + "wallet_lots"

    # ------------------------------------------------------------ writing
    def create_tables(self, cursor: ViewCursor) -> None:
        t = self.transactions
        # SQLite makes exactly "INTEGER PRIMARY KEY" the rowid (64-bit there); PostgreSQL's INTEGER is 32-bit.
        seq_key = "INTEGER PRIMARY KEY" if cursor.kind == "sqlite" else "BIGINT PRIMARY KEY"
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {self.owners} (wallet_id TEXT PRIMARY KEY, user_id TEXT NOT NULL)",
            f"""CREATE TABLE IF NOT EXISTS {t} (
                user_id TEXT NOT NULL, wallet_version BIGINT NOT NULL,
                seq {seq_key}, type TEXT NOT NULL, amount BIGINT NOT NULL,
                balance_before BIGINT NOT NULL, balance_after BIGINT NOT NULL, description TEXT NOT NULL,
                reference_type TEXT, reference_id TEXT, created_at TEXT NOT NULL, expires_at TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {t}_user_seq ON {t} (user_id, seq DESC)",
            f"CREATE INDEX IF NOT EXISTS {t}_user_type ON {t} (user_id, type, seq DESC)",
            f"""CREATE TABLE IF NOT EXISTS {self.lots} (
                user_id TEXT NOT NULL, lot_id TEXT NOT NULL, expires_at TEXT, remaining BIGINT NOT NULL,
                PRIMARY KEY (user_id, lot_id))""",
            # Only lots with points left matter to the expiry job; the rest stay out of the index.
            f"CREATE INDEX IF NOT EXISTS {self.lots}_live ON {self.lots} (expires_at) WHERE remaining > 0",
        ):
            cursor.execute(statement)

    def apply(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        # The batch rules below hold because a lot is credited before anything draws on
        # it; a lot restored by a refused refund breaks that, so the batch is cut there
        # (restores are rare) and the restore applied on its own, in order.
        start = 0
        for index, (seq, event) in enumerate(events):
            if isinstance(event, Wallet.LotRestored):
                self._apply_batch(cursor, events[start:index])
                self._restore(cursor, seq, event)
                start = index + 1
        self._apply_batch(cursor, events[start:])

    def _restore(self, cursor: ViewCursor, seq: int, event: Any) -> None:
        user_id = self._owner(cursor, str(event.originator_id))
        movement = movement_values(event)
        assert movement is not None
        cursor.insert_rows(self.transactions, _ROW_COLUMNS, [_transaction_row(user_id, movement, seq)])
        key = (user_id, event.lot_id)
        held = cursor.execute(f"SELECT remaining FROM {self.lots} WHERE user_id = ? AND lot_id = ?", key).fetchone()
        if held is not None:
            cursor.execute(f"UPDATE {self.lots} SET remaining = remaining + ? WHERE user_id = ? AND lot_id = ?", (event.amount, *key))
        else:
            expires = to_utc_text(event.expires_at) if event.expires_at else None
            cursor.insert_rows(self.lots, ("user_id", "lot_id", "expires_at", "remaining"), [(*key, expires, event.amount)])

    def _apply_batch(self, cursor: ViewCursor, events: Sequence[Tracked]) -> None:
        if not events:
            return
        # Wallets are told apart by their ids' integers (hashed in C; `str()` of a UUID is
        # Python code), made text only for the owners read from the table: those of wallets
        # opened before this batch in one query (not one per wallet), those opened in it from
        # their Opened events (a wallet's first event, so always seen before its others).
        wallet_events = _WALLET_EVENTS.keep(events)
        owners: dict[int, str] = {}
        earlier: dict[int, Any] = {}
        for _, event in wallet_events:
            key = event.originator_id.int
            if type(event) is Wallet.Opened:
                owners[key] = event.user_id
            elif key not in owners:
                earlier[key] = event.originator_id
        if earlier:
            owners.update((UUID(wallet).int, user_id) for wallet, user_id in self._owners(cursor, [str(w) for w in earlier.values()]).items())
        # A lot is always credited before anything draws on it, and subtractions commute, so
        # the batch's draws are summed per lot (one UPDATE each, not one per spend), and those
        # on lots credited in this same batch are taken before the lots are inserted.
        new_owners: list[tuple[str, str]] = []
        transactions: list[tuple[Any, ...]] = []
        fresh: dict[tuple[str, str], list[Any]] = {}
        owed: dict[tuple[str, str], int] = {}
        created, text = _CREATED, to_utc_text
        for seq, event in wallet_events:
            kind = type(event)
            if kind is Wallet.Opened:
                new_owners.append((str(event.originator_id), event.user_id))
                continue
            user_id = owners.get(event.originator_id.int)
            if user_id is None:
                raise LookupError(f"wallet {event.originator_id} has events but no Opened event before them")
            movement = movement_values(event)
            if movement is None:
                continue
            # `_transaction_row`, inlined: this loop runs once per wallet event.
            expires = movement[created + 1]
            expires_text = text(expires) if expires else None
            transactions.append((user_id, *movement[:created], text(movement[created]), expires_text, seq))
            if kind is Wallet.Debited:
                for lot_id, taken, *_ in event.draws:
                    _draw(fresh, owed, (user_id, lot_id), taken)
            elif kind is Wallet.Credited:
                fresh[(user_id, event.lot_id)] = [user_id, event.lot_id, expires_text, event.amount]
            elif isinstance(event, Wallet.Expired):
                _draw(fresh, owed, (user_id, event.lot_id), event.amount)
        cursor.insert_rows(self.owners, ("wallet_id", "user_id"), new_owners)
        cursor.insert_rows(self.transactions, _ROW_COLUMNS, transactions)
        # Emptied lots leave the table, as they leave the wallet aggregate.
        cursor.insert_rows(
            self.lots, ("user_id", "lot_id", "expires_at", "remaining"), [tuple(lot) for lot in fresh.values() if lot[3] > 0]
        )
        cursor.executemany(
            f"UPDATE {self.lots} SET remaining = remaining - ? WHERE user_id = ? AND lot_id = ?",
            [(taken, user_id, lot_id) for (user_id, lot_id), taken in owed.items()],
        )
        if owed:
            cursor.executemany(
                f"DELETE FROM {self.lots} WHERE user_id = ? AND lot_id = ? AND remaining = 0", sorted(owed)
            )

    def _owners(self, cursor: ViewCursor, wallets: Sequence[str]) -> dict[str, str]:
        """wallet id -> user id of the `wallets` already in the table."""
        rows = cursor.rows_by_key(self.owners, "wallet_id", wallets, columns="wallet_id, user_id")
        return {wallet: row["user_id"] for wallet, row in rows.items()}

    def _owner(self, cursor: ViewCursor, wallet: str) -> str:
        row = cursor.execute(f"SELECT user_id FROM {self.owners} WHERE wallet_id = ?", (wallet,)).fetchone()
        if row is None:
            raise LookupError(f"wallet {wallet} has events but no Opened event before them")
        return row["user_id"]

    # ------------------------------------------------------------ reading
    def history(
        self,
        view_db: ViewDatabase,
        user_id: str,
        *,
        type: str | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, str | None]:
        """A page of the user's transactions, newest first: (items, total_count, next_cursor).

        `from_` is inclusive and `to` exclusive, so consecutive ranges never
        share a transaction. `total_count` counts every match, not just the page.
        """
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first!r}")
        if type is not None and type not in TRANSACTION_TYPES:
            raise InvalidInput(f"unknown transaction type {type!r}")
        where, params = ["user_id = ?"], [user_id]
        for clause, value in (("type = ?", type), ("created_at >= ?", from_), ("created_at < ?", to)):
            if value is not None:
                where.append(clause)
                params.append(to_utc_text(value) if isinstance(value, datetime) else value)
        page_where, page_params = list(where), list(params)
        scope = scope_of(*params, *(clause for clause in where[1:]))
        if after is not None:
            page_where.append("seq < ?")
            page_params.append(CURSORS.decode(after, scope)[0])
        with view_db.transaction(readonly=True) as cursor:
            total = cursor.execute(
                f"SELECT COUNT(*) AS n FROM {self.transactions} WHERE {' AND '.join(where)}", params
            ).fetchone()["n"]
            rows = cursor.execute(
                f"SELECT {_COLUMNS}, seq FROM {self.transactions} WHERE {' AND '.join(page_where)}"
                " ORDER BY seq DESC LIMIT ?",
                [*page_params, first + 1],
            ).fetchall()
        next_cursor = CURSORS.encode(scope, rows[first - 1]["seq"]) if len(rows) > first else None
        return [_transaction_from_row(row) for row in rows[:first]], int(total), next_cursor

    def users_with_expired_lots(self, view_db: ViewDatabase, now: datetime) -> list[str]:
        """Users holding a lot with points left whose expiry is at or before `now` (the wallet's own rule)."""
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT DISTINCT user_id FROM {self.lots}"
                " WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY user_id",
                (to_utc_text(now),),
            ).fetchall()
        return [row["user_id"] for row in rows]

    def lots_expiring_between(
        self, view_db: ViewDatabase, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, datetime]]:
        """(user_id, lot_id, remaining, expires_at) of lots with points left expiring in [start, end), soonest first."""
        with view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT user_id, lot_id, remaining, expires_at FROM {self.lots}"
                " WHERE remaining > 0 AND expires_at >= ? AND expires_at < ?"
                " ORDER BY expires_at, user_id, lot_id",
                (to_utc_text(start), to_utc_text(end)),
            ).fetchall()
        return [(r["user_id"], r["lot_id"], int(r["remaining"]), _from_utc_text(r["expires_at"])) for r in rows]


def _draw(fresh: dict[tuple[str, str], list[Any]], owed: dict[tuple[str, str], int], lot: tuple[str, str], taken: int) -> None:
    """`taken` points drawn from `lot`: from its row to be inserted if this batch credited it, else owed by its stored row."""
    row = fresh.get(lot)
    if row is not None:
        row[3] -= taken
    else:
        owed[lot] = owed.get(lot, 0) + taken


def _transaction_row(user_id: str, movement: tuple[Any, ...], seq: int) -> tuple[Any, ...]:
    created, expires = movement[_CREATED], movement[_CREATED + 1]
    return (user_id, *movement[:_CREATED], to_utc_text(created), to_utc_text(expires) if expires else None, seq)


def _transaction_from_row(row: dict[str, Any]) -> dict[str, Any]:
    transaction = {"id": wallet_transaction_id(row["user_id"], row["wallet_version"])}
    transaction.update((key, row[key]) for key in _ROW_COLUMNS[:-1])
    transaction["created_at"] = _from_utc_text(row["created_at"])
    transaction["expires_at"] = _from_utc_text(row["expires_at"])
    return transaction
