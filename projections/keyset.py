"""Opaque cursors for keyset paging: every list of the API pages the same way.

A cursor is base64url of `<list>:<scope>:<key>…`:
- `<list>` names the list that minted it (`payments`, `notifications`, …), so a
  cursor of one list handed to another is refused;
- `<scope>` is a short digest of what the list was asked for (the user, the
  filters), so a cursor of user A's list handed to user B's list, or of one
  filter handed to another, is refused too;
- `<key>` is the keyset of the last row of the page: the row's ledger position
  (`seq`), plus the row id where positions can repeat. The next page is the rows
  strictly beyond it in the list's order, so a row written between two pages is
  neither repeated nor skipped (positions only grow, so new rows land at the newest
  end: before the first page of a newest-first list, after the last of an
  oldest-first one).

A cursor is not a credential: it carries no permission, only a place in one list;
the list's own rule decides who may read it. Anything else (not base64, another
list's, another scope's, a key out of range) answers BAD_USER_INPUT, never an error
of the database.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from domain.errors import InvalidInput

T = TypeVar("T")

#: Keys are BIGINT positions on PostgreSQL and INTEGER on SQLite: larger ones are refused.
MAX_POSITION = 2**63 - 1
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None


def scope_of(*parts: object) -> str:
    """A short digest of what a list was asked for (None and "" read alike)."""
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Keyset:
    """The cursors of one list. `key` names the keyset's parts: `position` (a ledger
    position, 0 to 2^63-1), `id` (a UUID) or `token` (an id of letters, digits and `_`),
    in order."""

    list_name: str
    key: tuple[str, ...] = ("position",)

    def encode(self, scope: str, *values: object) -> str:
        if len(values) != len(self.key):
            raise ValueError(f"{self.list_name}: a key of {len(self.key)} parts, got {values!r}")
        text = ":".join((self.list_name, scope, *(str(v) for v in values)))
        return base64.urlsafe_b64encode(text.encode()).decode()

    def decode(self, cursor: str, scope: str) -> tuple[int | str, ...]:
        """The keyset in `cursor`, checked to belong to this list and scope."""
        try:
            text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        except (binascii.Error, UnicodeError, ValueError) as error:
            raise InvalidInput("after: not a cursor (pass a page's nextCursor unchanged)") from error
        parts = text.split(":")
        if len(parts) != 2 + len(self.key):
            raise InvalidInput("after: not a cursor (pass a page's nextCursor unchanged)")
        if parts[0] != self.list_name or parts[1] != scope:
            raise InvalidInput(
                f"after: a cursor of another list; pass a nextCursor of this very {self.list_name} list "
                "(same user and filters)"
            )
        return tuple(_part(kind, value) for kind, value in zip(self.key, parts[2:]))


def _part(kind: str, value: str) -> int | str:
    if kind == "position":
        if value.isascii() and value.isdigit() and int(value) <= MAX_POSITION:
            return int(value)
    elif kind == "id" and _ID.match(value):
        return value
    elif kind == "token" and _TOKEN.match(value):
        return value
    raise InvalidInput("after: not a cursor (pass a page's nextCursor unchanged)")


def page_of(rows: list[T], first: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """The page from `rows` read with LIMIT first + 1: the extra row only says there is more."""
    items = rows[:first]
    return Page(items, cursor_of(items[-1]) if len(rows) > first else None)

