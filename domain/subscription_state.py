"""What a subscription answers without recording anything: its statuses, the
queries commands and jobs ask of it (which period is due, at what price, how much
of a quota is used, what canceling now refunds) and the guards commands check
first. A mixin of `Subscription` (domain/subscription.py), which keeps the
commands and the events; it reads only the state those events set.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from domain.errors import Conflict
from domain.periods import is_due, period_bounds, quota_window
from domain.subscription_rules import period_price, unused_share

TRIALING, ACTIVE, PAST_DUE, CANCELING = "TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"
CANCELED, EXPIRED, SUSPENDED = "CANCELED", "EXPIRED", "SUSPENDED"
ENDED = (CANCELED, EXPIRED)
#: Statuses a due run charges (renewal, trial end, dunning retry).
CHARGEABLE = (TRIALING, ACTIVE, PAST_DUE)
#: Statuses in which the plan's services may be used.
USABLE = (TRIALING, ACTIVE, PAST_DUE, CANCELING)


class SubscriptionReads:
    """Reads and guards over the state `Subscription`'s events set (see its `__init__`)."""

    id: Any
    status: str
    plan_id: str
    cycle: str
    list_price: int
    promo: dict[str, Any] | None
    price: int
    started_at: datetime
    anchor: datetime
    anchor_number: int
    usage_anchor: datetime
    period_number: int
    period_start: datetime
    period_end: datetime
    period_paid: bool
    next_charge_at: datetime | None
    pending_payment_id: str | None
    resume_status: str | None
    pending_change: dict[str, Any] | None
    usage_window_start: datetime | None
    usage: dict[str, int]
    request_prints: dict[str, str]

    # ------------------------------------------------------------ reads
    @property
    def live(self) -> bool:
        return self.status not in ENDED

    @property
    def due_number(self) -> int:
        """The period the next charge pays for: the unpaid current one, else the next."""
        return self.period_number + 1 if self.period_paid else self.period_number

    def is_due(self, now: datetime, tz: tzinfo) -> bool:
        return self.status in CHARGEABLE and self.next_charge_at is not None and is_due(self.next_charge_at, now, tz)

    def next_terms(self, number: int | None = None) -> dict[str, Any]:
        """Plan, cycle and price of period `number` (default: the due one): a pending
        change applies from the next period paid on."""
        change = self.pending_change or {}
        plan_id = change.get("plan_id", self.plan_id)
        list_price = change.get("list_price", self.list_price)
        return {
            "plan_id": plan_id,
            "cycle": change.get("cycle", self.cycle),
            "list_price": list_price,
            "amount": period_price(list_price, self.promo, plan_id, self.due_number if number is None else number),
            "applies_change": bool(change),
        }

    def bounds(self, number: int, tz: tzinfo) -> tuple[datetime, datetime]:
        return period_bounds(self.anchor, number - self.anchor_number, self.cycle, tz)

    def usage_window(self, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
        """The monthly quota window holding `now`; before the first paid period, the trial."""
        if now < self.usage_anchor:
            return self.started_at, self.usage_anchor
        return quota_window(self.usage_anchor, now, tz)

    def used(self, service: str, window_start: datetime) -> int:
        return self.usage.get(service, 0) if self.usage_window_start == window_start else 0

    # ------------------------------------------------------------ guards
    def check_live(self) -> None:
        if not self.live:
            raise Conflict(f"subscription {self.id} is {self.status}")

    def check_no_charge_in_flight(self) -> None:
        # SPEC §3: no new attempt starts while one is PENDING.
        if self.pending_payment_id is not None:
            raise Conflict(f"a charge of subscription {self.id} is still being confirmed; try again later")

    def refund_due(self, now: datetime) -> int:
        """What canceling now gives back: the unused share of a paid, priced period."""
        if self.status not in (ACTIVE, CANCELING) or self.resume_status == TRIALING:
            return 0
        if not self.period_paid or self.price <= 0:
            return 0
        return unused_share(self.price, self.period_start, self.period_end, now)

    def check_changeable(self) -> None:
        if self.status not in (TRIALING, ACTIVE):
            raise Conflict(f"subscription {self.id} is {self.status}: its plan cannot be changed now")
