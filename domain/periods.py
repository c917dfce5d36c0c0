"""Calendar periods, quota windows, run times and proration (SPEC §3) — pure functions.

Every function takes timezone-aware datetimes (any zone) and returns aware
datetimes in UTC; naive datetimes are refused with ValueError because guessing
their zone is exactly the kind of silent error billing must not make. Calendar
arithmetic happens in the given IANA zone (`SUBLEDGER_TIMEZONE`, default
Asia/Seoul), keeping the anchor's local time of day.

Periods are *index based*: the end of period i is computed from the anchor
(`anchor + (i+1) months`), never from the previous end, so clamping in a short
month never drifts (Jan 31 → Feb 28 → Mar 31, not Mar 28).

Local times that a DST zone skips or repeats are resolved with PEP 495 `fold=0`:
- a non-existent wall time (spring-forward gap) is read with the offset in force
  before the gap, i.e. it moves forward by the gap (02:30 → 03:30 in New York);
- an ambiguous wall time (fall-back overlap) is the earlier of its two instants.
The anchor itself is always kept as given (period 0 starts exactly at it).

Proration is exact rational arithmetic; floats are refused, because a
`total_seconds()` float can flip a half-won rounding.
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
MONTHLY = "MONTHLY"
ANNUAL = "ANNUAL"
DEFAULT_RUN_TIMES: tuple[time, ...] = (time(0, 0), time(9, 0))

__all__ = [
    "SEOUL", "MONTHLY", "ANNUAL", "DEFAULT_RUN_TIMES",
    "add_months", "period_end", "period_bounds", "period_index_at", "quota_window",
    "local_date", "is_due", "daily_run_times",
    "prorate", "proration_net", "round_half_away",
]


# ------------------------------------------------------------------ helpers

def _zone(tz: tzinfo | str | None) -> tzinfo:
    if tz is None:
        return SEOUL
    if isinstance(tz, str):
        return ZoneInfo(tz)
    return tz


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _localize(naive: datetime, tz: tzinfo) -> datetime:
    """Wall time in `tz` → UTC instant; fold=0 resolves gaps and overlaps (module doc)."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def _cycle_months(cycle: str) -> int:
    value = getattr(cycle, "value", cycle)  # tolerate str-based enums
    if value == MONTHLY:
        return 1
    if value == ANNUAL:
        return 12
    raise ValueError(f"unknown billing cycle {cycle!r} (expected MONTHLY or ANNUAL)")


# ------------------------------------------------------------------ periods

def add_months(anchor: datetime, months: int, tz: tzinfo | str = SEOUL) -> datetime:
    """`anchor` moved by `months` calendar months in local time, day clamped to the month."""
    _aware(anchor, "anchor")
    if months == 0:
        # Exactly the anchor, even when it is the second instant of an ambiguous wall time.
        return _utc(anchor)
    zone = _zone(tz)
    local = anchor.astimezone(zone)
    year, month0 = divmod(local.year * 12 + (local.month - 1) + months, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{anchor.isoformat()} + {months} months is out of range")
    day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
    return _localize(local.replace(tzinfo=None, year=year, month=month0 + 1, day=day), zone)


def period_end(anchor: datetime, index: int, cycle: str, tz: tzinfo | str = SEOUL) -> datetime:
    """End of period `index` (0-based) of a subscription anchored on `anchor`."""
    if index < 0:
        raise ValueError(f"period index must be >= 0, got {index}")
    return add_months(anchor, _cycle_months(cycle) * (index + 1), tz)


def period_bounds(
    anchor: datetime, index: int, cycle: str, tz: tzinfo | str = SEOUL
) -> tuple[datetime, datetime]:
    """[start, end) of period `index`; start of i is the end of i-1, start of 0 the anchor."""
    end = period_end(anchor, index, cycle, tz)
    start = _utc(anchor) if index == 0 else period_end(anchor, index - 1, cycle, tz)
    return start, end


def period_index_at(anchor: datetime, when: datetime, cycle: str, tz: tzinfo | str = SEOUL) -> int:
    """Index of the period with start <= when < end. `when` before the anchor is a ValueError."""
    # Compare in UTC: PEP 495 makes cross-zone == False for ambiguous wall times.
    anchor, when = _utc(_aware(anchor, "anchor")), _utc(_aware(when, "when"))
    if when < anchor:
        raise ValueError(f"{when.isoformat()} is before the period anchor {anchor.isoformat()}")
    step = _cycle_months(cycle)
    zone = _zone(tz)
    a, w = anchor.astimezone(zone), when.astimezone(zone)
    # Calendar-month distance gives the index within one; the loops settle the edges.
    index = max(0, ((w.year - a.year) * 12 + (w.month - a.month)) // step - 1)
    while period_end(anchor, index, cycle, zone) <= when:
        index += 1
    while index > 0 and period_end(anchor, index - 1, cycle, zone) > when:
        index -= 1
    return index


def quota_window(anchor: datetime, when: datetime, tz: tzinfo | str = SEOUL) -> tuple[datetime, datetime]:
    """Monthly usage window containing `when`; windows are monthly for annual plans too."""
    return period_bounds(anchor, period_index_at(anchor, when, MONTHLY, tz), MONTHLY, tz)


# ------------------------------------------------------------------ daily runs

def local_date(when: datetime, tz: tzinfo | str = SEOUL) -> date:
    return _aware(when, "when").astimezone(_zone(tz)).date()


def is_due(next_billing_at: datetime, run_at: datetime, tz: tzinfo | str = SEOUL) -> bool:
    """SPEC due rule: the run's local date is on or after the local date of `next_billing_at`."""
    return local_date(run_at, tz) >= local_date(next_billing_at, tz)


def daily_run_times(
    after: datetime,
    until: datetime,
    tz: tzinfo | str = SEOUL,
    times: tuple[time, ...] = DEFAULT_RUN_TIMES,
) -> list[datetime]:
    """Every scheduled run instant t with after < t <= until, ascending, in UTC.

    `times` are local wall times (their own tzinfo, if any, is ignored). A run whose
    wall time does not exist that day happens at the shifted instant (module doc);
    two wall times that land on one instant give one run.
    """
    _aware(after, "after")
    _aware(until, "until")
    if until <= after:
        return []
    zone = _zone(tz)
    # One day of margin each side: a gap-shifted run can cross local midnight.
    day = after.astimezone(zone).date() - timedelta(days=1)
    last = until.astimezone(zone).date() + timedelta(days=1)
    runs: set[datetime] = set()
    while day <= last:
        for wall in times:
            instant = _localize(datetime.combine(day, wall.replace(tzinfo=None)), zone)
            if after < instant <= until:
                runs.add(instant)
        day += timedelta(days=1)
    return sorted(runs)


# ------------------------------------------------------------------ money

def round_half_away(numerator: int, denominator: int) -> int:
    """numerator/denominator rounded to an integer, halves away from zero (exact)."""
    if not isinstance(numerator, int) or not isinstance(denominator, int):
        raise TypeError("round_half_away takes integers")
    if denominator == 0:
        raise ZeroDivisionError("round_half_away: denominator is 0")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder >= abs(denominator):
        quotient += 1
    return -quotient if negative else quotient


def _exact(value: object, name: str) -> Fraction:
    if isinstance(value, timedelta):
        return Fraction(value // timedelta(microseconds=1), 1_000_000)
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"{name} must be int, Fraction, Decimal or timedelta (floats are inexact)")
    if isinstance(value, (int, Fraction, Decimal)):
        return Fraction(value)
    raise TypeError(f"{name} must be int, Fraction, Decimal or timedelta, got {type(value).__name__}")


def prorate(
    price: int,
    remaining_seconds: int | Fraction | Decimal | timedelta,
    period_seconds: int | Fraction | Decimal | timedelta,
) -> int:
    """round(price × remaining / period), halves away from zero, exact.

    `remaining` is clamped into [0, period]: a caller's "now" can sit past the
    period end (e.g. a PAST_DUE subscription), where nothing is left unused.
    """
    if not isinstance(price, int) or isinstance(price, bool) or price < 0:
        raise ValueError(f"price must be a non-negative integer, got {price!r}")
    period = _exact(period_seconds, "period_seconds")
    if period <= 0:
        raise ValueError(f"period length must be positive, got {period_seconds!r}")
    remaining = min(max(_exact(remaining_seconds, "remaining_seconds"), Fraction(0)), period)
    share = price * remaining / period
    return round_half_away(share.numerator, share.denominator)


def proration_net(
    old_price: int,
    new_price: int,
    remaining: int | Fraction | Decimal | timedelta,
    period: int | Fraction | Decimal | timedelta,
) -> int:
    """SPEC plan change: prorate(new) − prorate(old); > 0 is charged, < 0 refunded."""
    return prorate(new_price, remaining, period) - prorate(old_price, remaining, period)
