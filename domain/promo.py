"""Promo codes (SPEC §3): percent or amount off, for some periods, some plans, until a
date, up to a number of redemptions.

A code's id is derived from the code (case-insensitive), so creating the same
code twice collides on the version-1 insert, and a redemption is saved in the
same transaction as the subscription that uses it: `maxRedemptions` holds under
concurrent subscribers, because the second one's save conflicts and re-checks.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.errors import InvalidInput, PromoCodeInvalid
from domain.ids import NAMESPACE

CODE = re.compile(r"[A-Za-z0-9_-]{3,40}")


def promo_id(code: str) -> UUID:
    return uuid5(NAMESPACE, f"promo:{code.strip().upper()}")


def check_promo_input(
    code: str, percent_off: int | None, amount_off: int | None, duration_periods: int | None,
    max_redemptions: int | None, plan_ids: list[str] | None, known_plans: Any,
) -> None:
    if not CODE.fullmatch(code.strip()):
        raise InvalidInput("code must be 3 to 40 letters, digits, '_' or '-'")
    if (percent_off is None) == (amount_off is None):
        raise InvalidInput("give exactly one of percentOff or amountOff")
    if percent_off is not None and not 1 <= percent_off <= 100:
        raise InvalidInput(f"percentOff must be between 1 and 100, got {percent_off}")
    if amount_off is not None and amount_off < 1:
        raise InvalidInput(f"amountOff must be positive, got {amount_off}")
    if duration_periods is not None and duration_periods < 1:
        raise InvalidInput(f"durationPeriods must be at least 1 (or null for forever), got {duration_periods}")
    if max_redemptions is not None and max_redemptions < 1:
        raise InvalidInput(f"maxRedemptions must be at least 1 (or null), got {max_redemptions}")
    for plan_id in plan_ids or []:
        if plan_id not in known_plans:
            raise InvalidInput(f"unknown plan {plan_id!r}")


class PromoCode(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return promo_id(code)

    @event("Created")
    def __init__(
        self, code: str, percent_off: int | None, amount_off: int | None, duration_periods: int | None,
        max_redemptions: int | None, expires_at: datetime | None, plan_ids: list[str] | None, at: datetime,
    ) -> None:
        self.code = code
        self.percent_off = percent_off
        self.amount_off = amount_off
        self.duration_periods = duration_periods
        self.max_redemptions = max_redemptions
        self.expires_at = expires_at
        self.plan_ids = plan_ids
        self.created_at = at
        self.redeemed_by: list[str] = []  # subscription ids

    @property
    def redemptions(self) -> int:
        return len(self.redeemed_by)

    @property
    def terms(self) -> dict[str, Any]:
        """What a subscription keeps of the code: its discount is locked with the price."""
        return {
            "code": self.code,
            "percent_off": self.percent_off,
            "amount_off": self.amount_off,
            "duration_periods": self.duration_periods,
            "plan_ids": list(self.plan_ids) if self.plan_ids else None,
        }

    def check_usable(self, plan_id: str, now: datetime) -> None:
        if self.expires_at is not None and now >= self.expires_at:
            raise PromoCodeInvalid(f"promo code {self.code} has expired")
        if self.max_redemptions is not None and self.redemptions >= self.max_redemptions:
            raise PromoCodeInvalid(f"promo code {self.code} has been used up")
        if self.plan_ids and plan_id not in self.plan_ids:
            raise PromoCodeInvalid(f"promo code {self.code} is not valid for plan {plan_id}")

    def redeem(self, subscription_id: str, plan_id: str, now: datetime) -> None:
        if subscription_id in self.redeemed_by:
            return
        self.check_usable(plan_id, now)
        self._redeemed(subscription_id=subscription_id, at=now)

    def release(self, subscription_id: str, now: datetime) -> None:
        """A subscription that never started (its first charge failed) gives its redemption back."""
        if subscription_id in self.redeemed_by:
            self._released(subscription_id=subscription_id, at=now)

    @event("Redeemed")
    def _redeemed(self, subscription_id: str, at: datetime) -> None:
        self.redeemed_by.append(subscription_id)

    @event("Released")
    def _released(self, subscription_id: str, at: datetime) -> None:
        self.redeemed_by.remove(subscription_id)
