"""The contract's scalars: DateTime (RFC 3339, offset required), Date, JSON."""
from __future__ import annotations

import datetime as dt
from typing import Any, NewType

import strawberry


def parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset: times must say their offset (e.g. 2026-01-31T00:00:00+09:00)")
    return parsed.astimezone(dt.timezone.utc)


def serialize_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise ValueError("Date must be a YYYY-MM-DD string")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a YYYY-MM-DD date") from None


DateTime = NewType("DateTime", dt.datetime)
Date = NewType("Date", dt.date)
JSON = NewType("JSON", object)

#: Handed to the schema's StrawberryConfig (scalar_map), as strawberry recommends.
SCALAR_MAP = {
    DateTime: strawberry.scalar(
        name="DateTime", serialize=serialize_datetime, parse_value=parse_datetime,
        description="An RFC 3339 date-time with an offset, e.g. 2026-01-31T00:00:00+09:00 (answered in UTC, `Z`). "
        "A time without an offset is refused (BAD_USER_INPUT).",
    ),
    Date: strawberry.scalar(
        name="Date", serialize=lambda value: value.isoformat(), parse_value=parse_date,
        description="A calendar date, YYYY-MM-DD.",
    ),
    JSON: strawberry.scalar(
        name="JSON", serialize=lambda value: value, parse_value=lambda value: value,
        description="Any JSON value.",
    ),
}
