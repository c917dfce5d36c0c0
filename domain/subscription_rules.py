"""The money and calendar rules of subscriptions (SPEC §3) as pure functions.

Kept apart from the aggregate so the unit and property tests can check each
rule against an independent computation without building a subscription.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from uuid import UUID

from domain.periods import local_date, prorate, round_half_away

#: Dunning: retries at the daily runs this many days after the first failure (SPEC §3).
RETRY_DAYS = (3, 6)
#: The failed attempt that suspends: the first one plus one per retry.
MAX_ATTEMPTS = 1 + len(RETRY_DAYS)
#: Reminders from the 09:00 run, in days before the date they announce.
REMINDER_DAYS = {"RENEWAL_REMINDER": (7, 3, 1), "TRIAL_ENDING": (3, 1)}


# ------------------------------------------------------------------ prices

def discounted(list_price: int, promo: dict[str, Any] | None) -> int:
    """The list price after a promo code: percent off rounded half away from zero, or an
    amount off; never below zero."""
    if not promo:
        return list_price
    if promo.get("percent_off"):
        return round_half_away(list_price * (100 - promo["percent_off"]), 100)
    return max(0, list_price - (promo.get("amount_off") or 0))


def promo_applies(promo: dict[str, Any] | None, plan_id: str, number: int) -> bool:
    """Whether the promo discounts paid period `number` (0-based) of `plan_id`."""
    if not promo:
        return False
    if promo.get("plan_ids") and plan_id not in promo["plan_ids"]:
        return False
    duration = promo.get("duration_periods")
    return duration is None or number < duration


def period_price(list_price: int, promo: dict[str, Any] | None, plan_id: str, number: int) -> int:
    return discounted(list_price, promo) if promo_applies(promo, plan_id, number) else list_price


def unused_share(price: int, start: datetime, end: datetime, now: datetime) -> int:
    """round(price × remaining / period) with both in exact seconds (SPEC §3 cancel now);
    `now` before the start counts the whole period as unused, after the end none of it."""
    return prorate(price, end - now, end - start)


def split_refund(amount: int, refundable: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Spread a refund over the period's payments in the order given, each up to what it
    can still refund; returns (payment, amount) pairs with amounts > 0."""
    plan, left = [], amount
    for payment, available in refundable:
        take = min(left, available)
        if take > 0:
            plan.append((payment, take))
            left -= take
    return plan


# ------------------------------------------------------------------ dunning and reminders

def local_midnight(day: date, tz: tzinfo) -> datetime:
    """00:00 local on `day`, as a UTC instant: the daily run of that date."""
    return datetime.combine(day, time(0)).replace(tzinfo=tz).astimezone(timezone.utc)


def retry_at(first_failed_on: date, failures: int, tz: tzinfo) -> datetime | None:
    """When the next attempt runs after `failures` failed ones, or None: suspend."""
    if failures >= MAX_ATTEMPTS:
        return None
    return local_midnight(first_failed_on + timedelta(days=RETRY_DAYS[failures - 1]), tz)


def days_before(target: datetime, now: datetime, tz: tzinfo) -> int:
    """Calendar days from today (local) to the local date of `target`."""
    return (local_date(target, tz) - local_date(now, tz)).days


# ------------------------------------------------------------------ usage

def reaches_warning(used_before: int, used_after: int, limit: int | None) -> bool:
    """True for the first use in a window that reaches 80% of the limit (exact integers)."""
    if not limit:
        return False
    return used_before * 5 < limit * 4 <= used_after * 5


# ------------------------------------------------------------------ order ids

def period_order_id(subscription_id: UUID, number: int, attempt: int) -> str:
    # Toss order ids: 6-64 characters of [A-Za-z0-9_-]; this is at most ~50.
    return f"sub-{subscription_id.hex}-p{number}-a{attempt}"


def proration_order_id(subscription_id: UUID, number: int, sequence: int, key: str | None) -> str:
    """With an idempotency key the order id comes from it, so a repeated request finds its
    payment instead of charging again."""
    tag = hashlib.sha256(key.encode()).hexdigest()[:12] if key else str(sequence)
    return f"sub-{subscription_id.hex}-p{number}-c{tag}"
