"""Periods, quota windows, daily runs and proration (SPEC §3)."""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.periods import (
    add_months,
    daily_run_times,
    is_due,
    local_date,
    period_bounds,
    period_end,
    period_index_at,
    prorate,
    proration_net,
    quota_window,
    round_half_away,
)

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=SEOUL)


def local(dt: datetime, tz=SEOUL) -> datetime:
    return dt.astimezone(tz).replace(tzinfo=None)


def add_calendar_months(d: date, months: int, anchor_day: int) -> date:
    """Independent oracle: year/month by counting, day clamped to the month's length."""
    year, month = d.year + (d.month - 1 + months) // 12, (d.month - 1 + months) % 12 + 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


# ------------------------------------------------------------------ examples

def test_jan_31_clamps_without_drift() -> None:
    anchor = kst(2023, 1, 31, 10, 0)
    ends = [local(period_end(anchor, i, "MONTHLY")) for i in range(4)]
    assert ends == [datetime(2023, 2, 28, 10), datetime(2023, 3, 31, 10),
                    datetime(2023, 4, 30, 10), datetime(2023, 5, 31, 10)]


def test_jan_31_leap_year() -> None:
    anchor = kst(2024, 1, 31, 10, 0)
    assert local(add_months(anchor, 1, SEOUL)) == datetime(2024, 2, 29, 10)
    assert local(add_months(anchor, 2, SEOUL)) == datetime(2024, 3, 31, 10)
    assert local(add_months(anchor, 3, SEOUL)) == datetime(2024, 4, 30, 10)


def test_feb_29_annual() -> None:
    anchor = kst(2024, 2, 29, 8, 15)
    assert local(period_end(anchor, 0, "ANNUAL")) == datetime(2025, 2, 28, 8, 15)
    assert local(period_end(anchor, 3, "ANNUAL")) == datetime(2028, 2, 29, 8, 15)  # back on the 29th
    assert period_bounds(anchor, 1, "ANNUAL")[0] == period_end(anchor, 0, "ANNUAL")


def test_seoul_late_evening_keeps_local_time_across_utc_date() -> None:
    anchor = kst(2024, 1, 31, 23, 30)  # 14:30 UTC on Jan 31
    end = period_end(anchor, 0, "MONTHLY")
    assert end.tzinfo is not None and end.utcoffset() == timedelta(0)
    assert local(end) == datetime(2024, 2, 29, 23, 30)
    assert end == datetime(2024, 2, 29, 14, 30, tzinfo=UTC)
    # The same instant read in UTC would anchor on the 31st at 14:30 UTC; local arithmetic matters:
    anchor2 = kst(2024, 3, 1, 0, 30)  # Feb 29 15:30 UTC
    assert local(add_months(anchor2, 1, SEOUL)) == datetime(2024, 4, 1, 0, 30)


def test_any_aware_input_and_utc_output() -> None:
    anchor = datetime(2024, 1, 31, 1, 0, tzinfo=UTC)  # Jan 31 10:00 KST
    assert add_months(anchor, 1, SEOUL) == datetime(2024, 2, 29, 1, 0, tzinfo=UTC)
    assert add_months(anchor, 0, SEOUL) == anchor
    assert add_months(anchor, -1, SEOUL) == datetime(2023, 12, 31, 1, 0, tzinfo=UTC)
    assert add_months(anchor, 1, "Asia/Seoul") == add_months(anchor, 1, SEOUL)
    with pytest.raises(ValueError):
        add_months(datetime(2024, 1, 31), 1, SEOUL)
    with pytest.raises(ValueError):
        period_end(anchor, 0, "WEEKLY", SEOUL)
    with pytest.raises(ValueError):
        period_end(anchor, -1, "MONTHLY", SEOUL)
    with pytest.raises(ValueError):
        period_index_at(anchor, anchor - timedelta(seconds=1), "MONTHLY", SEOUL)


def test_period_bounds_start_at_anchor() -> None:
    anchor = kst(2024, 5, 31, 12, 0, 7)
    start, end = period_bounds(anchor, 0, "MONTHLY")
    assert start == anchor and local(end) == datetime(2024, 6, 30, 12, 0, 7)
    assert period_bounds(anchor, 1, "MONTHLY") == (end, period_end(anchor, 1, "MONTHLY"))


def test_quota_window_monthly_on_annual_plan() -> None:
    anchor = kst(2024, 1, 31, 9, 0)
    start, end = quota_window(anchor, kst(2024, 3, 15), SEOUL)
    assert (local(start), local(end)) == (datetime(2024, 2, 29, 9), datetime(2024, 3, 31, 9))
    assert quota_window(anchor, anchor, SEOUL)[0] == anchor
    assert period_index_at(anchor, kst(2024, 3, 15), "ANNUAL") == 0


def test_dst_gap_moves_forward_and_overlap_takes_earlier() -> None:
    # 2024-03-10 02:30 does not exist in New York: read with EST, i.e. 03:30 EDT.
    gap = add_months(datetime(2024, 2, 10, 2, 30, tzinfo=NEW_YORK), 1, NEW_YORK)
    assert gap == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)
    assert local(gap, NEW_YORK) == datetime(2024, 3, 10, 3, 30)
    # The month after, the anchor's wall time exists again.
    assert local(add_months(datetime(2024, 2, 10, 2, 30, tzinfo=NEW_YORK), 2, NEW_YORK), NEW_YORK) == \
        datetime(2024, 4, 10, 2, 30)
    # 2024-11-03 01:30 happens twice: the earlier (EDT, UTC−4) one is chosen.
    overlap = add_months(datetime(2024, 10, 3, 1, 30, tzinfo=NEW_YORK), 1, NEW_YORK)
    assert overlap == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)
    # An anchor at the second 01:30 stays exactly itself as period 0's start.
    second = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK)
    # (compared in UTC: PEP 495 makes == across zones False for an ambiguous wall time)
    assert period_bounds(second, 0, "MONTHLY", NEW_YORK)[0] == second.astimezone(UTC)
    assert period_index_at(second, second, "MONTHLY", NEW_YORK) == 0
    assert local(period_end(second, 0, "MONTHLY", NEW_YORK), NEW_YORK) == datetime(2024, 12, 3, 1, 30)


def test_due_rule_uses_local_dates() -> None:
    nba = kst(2024, 3, 1, 23, 59)
    assert is_due(nba, kst(2024, 3, 1, 0, 0), SEOUL)  # same local date, earlier time: due
    assert not is_due(nba, kst(2024, 2, 29, 23, 59), SEOUL)
    assert is_due(nba, kst(2024, 3, 2, 0, 0), SEOUL)
    # 15:30 UTC Feb 29 is already Mar 1 in Seoul.
    assert local_date(datetime(2024, 2, 29, 15, 30, tzinfo=UTC), SEOUL) == date(2024, 3, 1)
    assert is_due(datetime(2024, 3, 1, 1, tzinfo=UTC), datetime(2024, 2, 29, 15, 0, tzinfo=UTC), SEOUL)


def test_daily_run_times_examples() -> None:
    after = kst(2024, 3, 1, 0, 0)  # exclusive
    runs = daily_run_times(after, kst(2024, 3, 3, 0, 0), SEOUL)  # inclusive
    assert [local(r) for r in runs] == [datetime(2024, 3, 1, 9), datetime(2024, 3, 2, 0),
                                        datetime(2024, 3, 2, 9), datetime(2024, 3, 3, 0)]
    assert all(r.utcoffset() == timedelta(0) for r in runs)
    assert daily_run_times(after, after, SEOUL) == []
    assert daily_run_times(after, after - timedelta(days=1), SEOUL) == []
    assert [local(r) for r in daily_run_times(after, kst(2024, 3, 2, 23), SEOUL, times=(time(12),))] == \
        [datetime(2024, 3, 1, 12), datetime(2024, 3, 2, 12)]
    # New York spring forward: the 02:30 run of Mar 10 happens at 03:30 EDT, once.
    ny = daily_run_times(datetime(2024, 3, 9, 12, tzinfo=NEW_YORK), datetime(2024, 3, 11, 12, tzinfo=NEW_YORK),
                         NEW_YORK, times=(time(2, 30), time(3, 30)))
    assert [local(r, NEW_YORK) for r in ny] == [datetime(2024, 3, 10, 3, 30), datetime(2024, 3, 11, 2, 30),
                                                datetime(2024, 3, 11, 3, 30)]


def test_prorate_examples() -> None:
    assert prorate(9_900, 0, 100) == 0
    assert prorate(9_900, 100, 100) == 9_900
    assert prorate(3, 1, 2) == 2  # 1.5 → 2
    assert prorate(5, 1, 2) == 3  # 2.5 → 3 (banker's rounding would give 2)
    assert prorate(9_900, 15, 30) == 4_950
    assert prorate(1, 1, 3) == 0 and prorate(2, 1, 3) == 1
    assert prorate(9_900, timedelta(days=15), timedelta(days=30)) == 4_950
    assert prorate(5, timedelta(microseconds=1), timedelta(microseconds=2)) == 3
    assert prorate(5, Fraction(1, 2), 1) == 3 and prorate(5, Decimal("0.5"), 1) == 3
    assert prorate(100, -5, 10) == 0 and prorate(100, 50, 10) == 100  # clamped into [0, period]
    with pytest.raises(TypeError):
        prorate(100, 1.5, 3)
    with pytest.raises(ValueError):
        prorate(100, 1, 0)
    with pytest.raises(ValueError):
        prorate(-1, 1, 2)
    assert proration_net(9_900, 19_900, 15, 30) == 9_950 - 4_950
    assert proration_net(19_900, 9_900, 15, 30) == -5_000


def test_round_half_away_examples() -> None:
    assert [round_half_away(n, 2) for n in (-5, -3, -1, 1, 3, 5)] == [-3, -2, -1, 1, 2, 3]
    assert round_half_away(7, -2) == -4 and round_half_away(-7, -2) == 4
    assert round_half_away(10, 4) == 3 and round_half_away(9, 4) == 2 and round_half_away(0, 5) == 0
    with pytest.raises(ZeroDivisionError):
        round_half_away(1, 0)


# ------------------------------------------------------------------ properties

ZONES = [SEOUL, ZoneInfo("UTC"), NEW_YORK, ZoneInfo("Europe/London"), ZoneInfo("Australia/Lord_Howe")]
seoul_anchors = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31),
                             timezones=st.just(SEOUL))
any_anchors = st.sampled_from(ZONES).flatmap(
    lambda tz: st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31),
                            timezones=st.just(tz), allow_imaginary=False))
cycles = st.sampled_from(["MONTHLY", "ANNUAL"])


def wall_time_exists(naive: datetime, tz) -> bool:
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


@settings(max_examples=300)
@given(anchor=any_anchors, cycle=cycles, count=st.integers(1, 40))
def test_periods_contiguous_and_increasing(anchor: datetime, cycle: str, count: int) -> None:
    tz = anchor.tzinfo
    previous_end = None
    for i in range(count):
        start, end = period_bounds(anchor, i, cycle, tz)
        assert start < end
        assert start == (anchor.astimezone(UTC) if i == 0 else previous_end)  # UTC: see PEP 495 note above
        assert end == period_end(anchor, i, cycle, tz)
        previous_end = end


@settings(max_examples=300)
@given(anchor=seoul_anchors, index=st.integers(0, 130))
def test_monthly_end_lands_on_clamped_anchor_day(anchor: datetime, index: int) -> None:
    end = local(period_end(anchor, index, "MONTHLY", SEOUL))
    a = local(anchor)
    assert end.date() == add_calendar_months(a.date(), index + 1, a.day)
    assert end.time() == a.time()


@settings(max_examples=300)
@given(anchor=seoul_anchors, index=st.integers(0, 8))
def test_annual_end_adds_calendar_years(anchor: datetime, index: int) -> None:
    end = local(period_end(anchor, index, "ANNUAL", SEOUL))
    a = local(anchor)
    assert end.date() == add_calendar_months(a.date(), 12 * (index + 1), a.day)
    assert (end.year, end.month) == (a.year + index + 1, a.month)
    assert end.time() == a.time()


@settings(max_examples=300)
@given(anchor=any_anchors, months=st.integers(-30, 30))
def test_dst_zones_keep_wall_time_where_it_exists(anchor: datetime, months: int) -> None:
    tz = anchor.tzinfo
    result = local(add_months(anchor, months, tz), tz)
    a = local(anchor, tz)
    expected = datetime.combine(add_calendar_months(a.date(), months, a.day), a.time())
    if wall_time_exists(expected, tz):
        assert result == expected
    else:  # skipped by a DST gap: moved forward by less than the gap (at most a few hours)
        assert expected < result < expected + timedelta(hours=3)


@settings(max_examples=300)
@given(anchor=any_anchors, cycle=cycles, offset=st.integers(0, 12 * 366 * 86_400))
def test_period_index_at_matches_bounds(anchor: datetime, cycle: str, offset: int) -> None:
    tz = anchor.tzinfo
    when = anchor + timedelta(seconds=offset)
    i = period_index_at(anchor, when, cycle, tz)
    start, end = period_bounds(anchor, i, cycle, tz)
    assert start <= when < end
    assert period_index_at(anchor, end, cycle, tz) == i + 1
    assert period_index_at(anchor, start, cycle, tz) == i
    assert period_index_at(anchor, end - timedelta(microseconds=1), cycle, tz) == i
    window = quota_window(anchor, when, tz)
    assert window[0] <= when < window[1]
    assert window == period_bounds(anchor, period_index_at(anchor, when, "MONTHLY", tz), "MONTHLY", tz)


@settings(max_examples=200)
@given(after=seoul_anchors, span=st.integers(0, 40 * 86_400))
def test_daily_run_times_ordered_bounded_complete(after: datetime, span: int) -> None:
    until = after + timedelta(seconds=span)
    runs = daily_run_times(after, until, SEOUL)
    assert runs == sorted(set(runs))
    assert all(after < r <= until for r in runs)
    assert all(local(r).time() in (time(0), time(9)) and r.utcoffset() == timedelta(0) for r in runs)
    # Complete: runs are 9 h / 15 h apart in Seoul, so no gap of 15 h or more is left unserved.
    points = [after, *runs]
    assert all(b - a <= timedelta(hours=15) for a, b in zip(points, points[1:]))
    assert until - points[-1] < timedelta(hours=15)
    # Splitting the range anywhere gives the same runs.
    middle = after + timedelta(seconds=span // 2)
    assert daily_run_times(after, middle, SEOUL) + daily_run_times(middle, until, SEOUL) == runs


prices = st.integers(0, 10_000_000)


@given(price=prices, period=st.integers(1, 400 * 86_400), data=st.data())
def test_prorate_matches_integer_oracle(price: int, period: int, data) -> None:
    remaining = data.draw(st.integers(0, period))
    # Independent oracle for non-negative values: half-up == half away from zero.
    expected = (2 * price * remaining + period) // (2 * period)
    assert prorate(price, remaining, period) == expected
    assert prorate(price, timedelta(seconds=remaining), timedelta(seconds=period)) == expected
    assert prorate(price, 0, period) == 0
    assert prorate(price, period, period) == price
    # Complementary parts sum to the price, plus 1 only when both are exact halves.
    both_halves = (2 * price * remaining) % (2 * period) == period
    assert prorate(price, remaining, period) + prorate(price, period - remaining, period) == price + both_halves
    assert 0 <= prorate(price, remaining, period) <= price


@given(price=prices, period=st.integers(1, 10**7), a=st.integers(0, 10**7), b=st.integers(0, 10**7))
def test_prorate_monotone_in_remaining(price: int, period: int, a: int, b: int) -> None:
    low, high = sorted((min(a, period), min(b, period)))
    assert prorate(price, low, period) <= prorate(price, high, period)


@given(old=prices, new=prices, period=st.integers(1, 10**7), data=st.data())
def test_proration_net_antisymmetric(old: int, new: int, period: int, data) -> None:
    remaining = data.draw(st.integers(0, period))
    net = proration_net(old, new, remaining, period)
    assert net == -proration_net(new, old, remaining, period)
    assert proration_net(old, old, remaining, period) == 0
    assert proration_net(old, new, period, period) == new - old
    assert (net > 0) == (prorate(new, remaining, period) > prorate(old, remaining, period))


@given(n=st.integers(-10**12, 10**12), d=st.integers(-10**6, 10**6).filter(bool))
def test_round_half_away_matches_oracle(n: int, d: int) -> None:
    # Oracle via Fraction: |x| rounded half-up, sign restored.
    x = Fraction(n, d)
    magnitude = abs(x)
    rounded = int(magnitude + Fraction(1, 2))  # floor(|x| + 1/2): half-up on the magnitude
    assert round_half_away(n, d) == (rounded if x >= 0 else -rounded)


@settings(max_examples=200)
@given(after=any_anchors, span=st.integers(0, 40 * 86_400))
def test_daily_run_times_in_dst_zones(after: datetime, span: int) -> None:
    tz = after.tzinfo
    until = after + timedelta(seconds=span)
    runs = daily_run_times(after, until, tz)
    assert runs == sorted(set(runs)) and all(after < r <= until for r in runs)
    for run in runs:  # a run at a skipped wall time is shifted forward by the gap
        wall = local(run, tz)
        assert wall.time() in (time(0), time(9)) or not wall_time_exists(
            datetime.combine(wall.date(), time(0)), tz)
    points = [after, *runs]
    assert all(b - a <= timedelta(hours=16) for a, b in zip(points, points[1:]))
