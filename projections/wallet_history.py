"""Wallet history (SPEC §4 "History") and the lots the expiry job sweeps.

Tables (names take the projection's prefix, so a rebuild can fill a second
set beside the live one):
- `wallet_owners`: wallet id -> user id. Only `Wallet.Opened` names the user;
  later events carry just the wallet id.
- `wallet_transactions`: one row per point-moving wallet event, described by
  `domain.transactions.transaction_from_event` exactly as the ledger answers it;
  `seq` is the notification id (global log order, newest first = seq DESC) and the key:
  rows arrive in `seq` order, so they are appended (on SQLite the table is stored by it,
  as its rowid), where the transaction `id`, a hash, would be inserted at a random place.
- `wallet_lots`: what is left of each lot, so the expiry job finds wallets with
  lots to sweep without loading every wallet.

Times are stored as fixed-width UTC ISO text (microseconds always present) on
both databases, so text order is time order and the same SQL filters them.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from domain.errors import InvalidInput
from domain.transactions import TRANSACTION_FIELDS, transaction_values
from domain.wallet import Wallet
from projections.database import ViewCursor, ViewDatabase
from projections.keyset import Keyset, scope_of
from projections.runner import Tracked

TRANSACTION_TYPES = frozenset({"PURCHASE", "USAGE", "REWARD", "REFUND", "ADJUSTMENT", "EXPIRATION"})
MAX_PAGE = 500
_COLUMNS = (
    "id, user_id, wallet_version, type, amount, balance_before, balance_after,"
    " description, reference_type, reference_id, created_at, expires_at"
)
_ROW_COLUMNS = (*_COLUMNS.replace(" ", "").split(","), "seq")
# A row is `transaction_values` with its times as text and `seq` after them.
assert _ROW_COLUMNS[:-1] == TRANSACTION_FIELDS, "the table's columns follow domain.transactions"
_CREATED = _ROW_COLUMNS.index("created_at")
#: Where a transaction row (`_transaction_row`) holds its lot's expiry, as stored text.
_EXPIRES = _ROW_COLUMNS.index("expires_at")
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
    version = 2

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
                id TEXT NOT NULL, user_id TEXT NOT NULL, wallet_version BIGINT NOT NULL,
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
        values = transaction_values(event, user_id)
        assert values is not None
        cursor.insert_rows(self.transactions, _ROW_COLUMNS, [_transaction_row(values, seq)])
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
        # Wallet ids as text once per event; the owners of wallets opened before this batch
        # in one query (not one per wallet), those opened in it as their Opened events come.
        wallet_events = [(seq, str(event.originator_id), event) for seq, event in events if isinstance(event, Wallet.Event)]
        opened = {wallet for _, wallet, event in wallet_events if isinstance(event, Wallet.Opened)}
        owners = self._owners(cursor, list(dict.fromkeys(w for _, w, _ in wallet_events if w not in opened)))
        new_owners, transactions, new_lots, draws = [], [], [], []
        for seq, wallet, event in wallet_events:
            if isinstance(event, Wallet.Opened):
                owners[wallet] = event.user_id
                new_owners.append((wallet, event.user_id))
                continue
            user_id = owners.get(wallet)
            if user_id is None:
                raise LookupError(f"wallet {wallet} has events but no Opened event before them")
            values = transaction_values(event, user_id)
            if values is None:
                continue
            transactions.append(_transaction_row(values, seq))
            if isinstance(event, Wallet.Debited):
                draws.extend((taken, user_id, lot_id) for lot_id, taken, *_ in event.draws)
            elif isinstance(event, Wallet.Credited):
                new_lots.append((user_id, event.lot_id, transactions[-1][_EXPIRES], event.amount))
            elif isinstance(event, Wallet.Expired):
                draws.append((event.amount, user_id, event.lot_id))
        cursor.insert_rows(self.owners, ("wallet_id", "user_id"), new_owners)
        cursor.insert_rows(self.transactions, _ROW_COLUMNS, transactions)
        # A lot is always credited before anything draws on it, and subtractions commute, so
        # the batch's draws are summed per lot (one UPDATE each, not one per spend), and those
        # on lots credited in this same batch are taken before the lots are inserted.
        fresh = {(user_id, lot_id): [user_id, lot_id, expires, amount] for user_id, lot_id, expires, amount in new_lots}
        owed: dict[tuple[str, str], int] = {}
        for taken, user_id, lot_id in draws:
            if (user_id, lot_id) in fresh:
                fresh[(user_id, lot_id)][3] -= taken
            else:
                owed[(user_id, lot_id)] = owed.get((user_id, lot_id), 0) + taken
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

    def _owners(self, cursor: ViewCursor, wallets: Sequence[str], chunk: int = 500) -> dict[str, str]:
        """wallet id -> user id of the `wallets` already in the table."""
        found: dict[str, str] = {}
        for i in range(0, len(wallets), chunk):
            part = wallets[i : i + chunk]
            rows = cursor.execute(
                f"SELECT wallet_id, user_id FROM {self.owners} WHERE wallet_id IN ({', '.join('?' * len(part))})", part
            ).fetchall()
            found.update((row["wallet_id"], row["user_id"]) for row in rows)
        return found

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


def _transaction_row(values: tuple[Any, ...], seq: int) -> tuple[Any, ...]:
    created, expires = values[_CREATED], values[_EXPIRES]
    return (*values[:_CREATED], to_utc_text(created), to_utc_text(expires) if expires else None, seq)


def _transaction_from_row(row: dict[str, Any]) -> dict[str, Any]:
    transaction = {key: row[key] for key in _COLUMNS.replace(" ", "").split(",")}
    transaction["created_at"] = _from_utc_text(row["created_at"])
    transaction["expires_at"] = _from_utc_text(row["expires_at"])
    return transaction

