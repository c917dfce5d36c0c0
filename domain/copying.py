"""Copying aggregates: what `copy.deepcopy` does for them, without its cost on values
that never change.

eventsourcing hands every command a deep copy of the cached aggregate (so a
command that fails halfway leaves the cache untouched), and the ledger caches a
copy of what each command saved (`Ledger._remember`). `copy.deepcopy` copies a
`datetime` or a `UUID` through `__reduce_ex__`, rebuilding an object that can
never change: a subscription holds a dozen of them, so one copy cost about
0.25 ms, and starting a renewal charge alone made four copies. Here values of immutable types are shared as they are,
plain containers are copied in place, and anything else still goes through
`copy.deepcopy` with the same memo, so shared references stay shared exactly as
deepcopy keeps them.

Each aggregate class names `copy_aggregate` as its `__deepcopy__`, so every deep
copy of it (eventsourcing's, the ledger's, a test's) takes this path.
"""
from __future__ import annotations

from copy import deepcopy
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

T = TypeVar("T")

#: Types whose values cannot change: a copy may share them. (Not subclasses: a
#: subclass of str could carry mutable attributes, so it goes through deepcopy.)
IMMUTABLE: frozenset[type] = frozenset({
    str, int, float, bool, type(None), bytes, complex, range,
    datetime, date, time, timedelta, timezone, ZoneInfo, UUID, Decimal,
})


def copy_value(value: T, memo: dict[int, Any]) -> T:
    """A deep copy of `value`, sharing immutable values and recording containers in `memo`."""
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if kind is dict:
        copied: Any = {}
        memo[key] = copied
        for name, item in value.items():  # type: ignore[attr-defined]
            copied[name if type(name) in IMMUTABLE else copy_value(name, memo)] = (
                item if type(item) in IMMUTABLE else copy_value(item, memo)
            )
    elif kind is list:
        copied = []
        memo[key] = copied
        copied.extend(item if type(item) in IMMUTABLE else copy_value(item, memo) for item in value)  # type: ignore[attr-defined]
    else:
        return deepcopy(value, memo)  # tuples, sets, dataclasses, enums: deepcopy's own rules (and memo)
    _keep_alive(value, memo)
    return copied


def copy_aggregate(aggregate: T, memo: dict[int, Any] | None = None) -> T:
    """`__deepcopy__` of an aggregate: a new instance of its class with a deep copy of its state."""
    memo = {} if memo is None else memo
    copied = object.__new__(type(aggregate))
    memo[id(aggregate)] = copied
    state = aggregate.__dict__
    copied.__dict__.update(
        {name: value if type(value) in IMMUTABLE else copy_value(value, memo) for name, value in state.items()}
    )
    _keep_alive(aggregate, memo)
    return copied


def _keep_alive(value: Any, memo: dict[int, Any]) -> None:
    """As `copy.deepcopy` does: the originals live as long as the memo, so no id in it is reused."""
    try:
        memo[id(memo)].append(value)
    except KeyError:
        memo[id(memo)] = [value]
