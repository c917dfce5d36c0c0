"""Business metrics from the analytics read model (SPEC §7), and what each one means.

Ranges are local calendar days in SUBLEDGER_TIMEZONE: `from` 00:00 up to the
end of `to` (inclusive). "At the end of the range" is that end, or now if the
range reaches into the future.

- A *subscriber* is a user whose subscription is TRIALING, ACTIVE, PAST_DUE or
  CANCELING on a priced plan (list price > 0; the free plan does not count).
- revenue.total: succeeded payments (subscriptions, prorations and point
  purchases, by the time they succeeded) minus refunds (by the time they were
  made) in the range; byPlan splits it by the plan paid for, point packages
  under `points`, so the parts add up to the total.
- mrr: monthly prices of the subscriptions ACTIVE or PAST_DUE (still renewing)
  at the end of the range, annual prices as price/12, rounded once at the end
  (halves up); arr = 12 × mrr.
- totalActive: subscribers at the end of the range; newSubscribers: users whose
  subscription on a priced plan started in the range; churnedSubscribers:
  users whose subscription left the subscriber states (CANCELED, EXPIRED or
  SUSPENDED) in the range; churnRate = churned ÷ subscribers at the range
  start (0 when there were none); retentionRate = 1 − churnRate.
- trialToPaid: of the trials whose trial end fell in the range (and is past),
  the share that reached a paid period before the range ended.
- planUpgrades/planDowngrades: plan or cycle changes taking effect in the range
  (immediately, or at the renewal that applies a pending change), compared by
  monthly-equivalent list price.
- payments: successRate = succeeded ÷ (succeeded + failed) of the attempts
  settled in the range (0 when none); refunds and refundedAmount in the range.
- cohorts: a user's signup is their first subscription (any plan); retained[k]
  counts members who were subscribers at some time in the k-th month after
  their signup month, for every month up to the current one.
- lifetimeValue: all the user's net revenue; subscriptionMonths: calendar
  months in which they had a paid (not trialing) subscription; the average is
  revenue ÷ months, halves up (0 without months).
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo
from fractions import Fraction
from typing import Any

from domain.errors import InvalidInput
from projections.wallet_history import to_utc_text

SUBSCRIBED = frozenset({"TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"})
PAID = frozenset({"ACTIVE", "PAST_DUE", "CANCELING"})
RENEWING = frozenset({"ACTIVE", "PAST_DUE"})
LEFT = frozenset({"CANCELED", "EXPIRED", "SUSPENDED"})
MAX_DAYS = 3700
MAX_MONTHS = 240
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def monthly(price: int, cycle: str) -> Fraction:
    return Fraction(price, 12) if cycle == "ANNUAL" else Fraction(price)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _subscriber(row: dict[str, Any], statuses: frozenset[str] = SUBSCRIBED) -> bool:
    return row["status"] in statuses and int(row["list_price"]) > 0


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def subscription_metrics(q: Any, start_day: date, end_day: date, tz: tzinfo, now: datetime) -> dict[str, Any]:
    if start_day > end_day:
        raise InvalidInput("from must not be after to")
    if (end_day - start_day).days > MAX_DAYS:
        raise InvalidInput(f"a range spans at most {MAX_DAYS} days")
    start, end = local_midnight(start_day, tz), local_midnight(end_day + timedelta(days=1), tz)
    money = q.payments_between(start, end)
    by_plan: dict[str, int] = {}
    for row in money["succeeded"]:
        by_plan[row["plan_id"] or "unknown"] = by_plan.get(row["plan_id"] or "unknown", 0) + int(row["amount"])
    for row in money["refunds"]:
        by_plan[row["plan_id"] or "unknown"] = by_plan.get(row["plan_id"] or "unknown", 0) - int(row["amount"])

    at_end = q.states_at(min(end, now))
    mrr = half_up(sum((monthly(int(s["price"]), s["cycle"]) for s in at_end if s["status"] in RENEWING), Fraction(0)))
    active_end = {s["user_id"] for s in at_end if _subscriber(s)}
    active_start = {s["user_id"] for s in q.states_at(min(start, now)) if _subscriber(s)}

    changes = q.transitions_between(start, end)
    new = {r["user_id"] for r in changes if r["from_status"] is None and int(r["list_price"]) > 0}
    churned = {
        r["user_id"] for r in changes
        if r["status"] in LEFT and r["from_status"] in SUBSCRIBED and int(r["list_price"]) > 0
    }
    upgrades = downgrades = 0
    for r in changes:
        if r["from_plan_id"] is None or (r["plan_id"], r["cycle"], r["list_price"]) == (r["from_plan_id"], r["from_cycle"], r["from_list_price"]):
            continue
        before, after = monthly(int(r["from_list_price"]), r["from_cycle"]), monthly(int(r["list_price"]), r["cycle"])
        upgrades += after > before
        downgrades += after < before

    trials = q.trials_ending_between(start, min(end, now))
    end_text = to_utc_text(end)
    converted = sum(1 for t in trials if t["converted_at"] is not None and t["converted_at"] < end_text)
    succeeded, failed = len(money["succeeded"]), int(money["failed"][0]["n"])
    churn_rate = _rate(len(churned), len(active_start))
    return {
        "from": start_day,
        "to": end_day,
        "revenue": {
            "total": sum(by_plan.values()),
            "by_plan": sorted(by_plan.items()),
            "mrr": mrr,
            "arr": 12 * mrr,
        },
        "subscribers": {
            "total_active": len(active_end),
            "new_subscribers": len(new),
            "churned_subscribers": len(churned),
            "churn_rate": churn_rate,
            "retention_rate": 1.0 - churn_rate,
        },
        "conversions": {"trial_to_paid": _rate(converted, len(trials)), "plan_upgrades": upgrades, "plan_downgrades": downgrades},
        "payments": {
            "success_rate": _rate(succeeded, succeeded + failed),
            "failed_payments": failed,
            "refunds": len(money["refunds"]),
            "refunded_amount": sum(int(r["amount"]) for r in money["refunds"]),
        },
    }


# ------------------------------------------------------------------ months
def parse_month(text: str) -> tuple[int, int]:
    match = _MONTH.match(text or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InvalidInput(f"{text!r} is not a month (YYYY-MM)")
    return int(match.group(1)), int(match.group(2))


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def month_of(index: int) -> tuple[int, int]:
    return index // 12, index % 12 + 1


def month_start(index: int, tz: tzinfo) -> datetime:
    year, month = month_of(index)
    return local_midnight(date(year, month, 1), tz)


def local_month(moment: datetime, tz: tzinfo) -> int:
    local = moment.astimezone(tz)
    return month_index(local.year, local.month)


def months_covered(valid_from: str, valid_to: str | None, tz: tzinfo, now: datetime) -> range:
    """Local months an interval [valid_from, valid_to) overlaps; an open one holds up to now, inclusive."""
    begin = datetime.fromisoformat(valid_from)
    if valid_to is None:
        return range(local_month(begin, tz), local_month(max(now, begin), tz) + 1)
    finish = datetime.fromisoformat(valid_to)
    if finish <= begin:
        return range(0)
    return range(local_month(begin, tz), local_month(finish - timedelta(microseconds=1), tz) + 1)


def cohorts(q: Any, from_month: str, to_month: str, tz: tzinfo, now: datetime) -> list[dict[str, Any]]:
    first, last = month_index(*parse_month(from_month)), month_index(*parse_month(to_month))
    if first > last:
        raise InvalidInput("fromMonth must not be after toMonth")
    if last - first >= MAX_MONTHS:
        raise InvalidInput(f"at most {MAX_MONTHS} cohorts at once")
    current = local_month(now, tz)
    members: dict[int, set[str]] = {m: set() for m in range(first, last + 1)}
    active: dict[str, set[int]] = {}
    for row in q.cohort_rows(month_start(first, tz), month_start(last + 1, tz)):
        user = row["user_id"]
        members[local_month(datetime.fromisoformat(row["signed_up_at"]), tz)].add(user)
        if row["status"] is not None and _subscriber(row):
            active.setdefault(user, set()).update(months_covered(row["valid_from"], row["valid_to"], tz, now))
    rows = []
    for month in range(first, last + 1):
        year, number = month_of(month)
        retained = [
            sum(1 for user in members[month] if month + k in active.get(user, ()))
            for k in range(max(0, current - month + 1))
        ]
        rows.append({"cohort": f"{year:04d}-{number:02d}", "size": len(members[month]), "retained": retained})
    return rows


def lifetime_value(q: Any, user_id: str, tz: tzinfo, now: datetime) -> dict[str, Any]:
    found = q.user_rows(user_id)
    months: set[int] = set()
    for row in found["states"]:
        if _subscriber(row, PAID):
            months.update(months_covered(row["valid_from"], row["valid_to"], tz, now))
    revenue = found["revenue"]
    return {
        "user_id": user_id,
        "total_revenue": revenue,
        "subscription_months": len(months),
        "average_monthly_value": half_up(Fraction(revenue, len(months))) if months else 0,
    }
