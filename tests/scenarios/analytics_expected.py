"""SPEC §7's analytics computed the plain way, for the scenario to compare against:
replay the ledger's raw Payment and Subscription events into per-subscription
timelines and payment records, then count, with none of the analytics read
model's code or SQL. The definitions are those written down in
projections/analytics_metrics.py; only the arithmetic here is independent.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from fractions import Fraction
from typing import Any

SUBSCRIBED = {"TRIALING", "ACTIVE", "PAST_DUE", "CANCELING"}
PAID = {"ACTIVE", "PAST_DUE", "CANCELING"}
RENEWING = {"ACTIVE", "PAST_DUE"}
LEFT = {"CANCELED", "EXPIRED", "SUSPENDED"}
STATUS_EVENTS = {"ChargeFailed", "CancelScheduled", "Canceled", "Resumed", "Expired"}


@dataclass
class Sub:
    user: str
    started: datetime
    trial_ends: datetime | None
    first_paid: datetime | None = None
    #: (time, status, plan, cycle, list price, price) after each event that changed something
    states: list[tuple] = field(default_factory=list)

    def at(self, moment: datetime) -> tuple | None:
        index = bisect.bisect_right([s[0] for s in self.states], moment)
        return self.states[index - 1] if index else None


def half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def monthly(price: int, cycle: str) -> Fraction:
    return Fraction(price, 12) if cycle == "ANNUAL" else Fraction(price)


class Expected:
    def __init__(self, tz: tzinfo, now: datetime) -> None:
        self.tz, self.now = tz, now
        self.subs: dict[str, Sub] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []

    @classmethod
    def from_ledger(cls, ledger: Any, tz: tzinfo, now: datetime) -> Expected:
        expected, position = cls(tz, now), 0
        while True:
            batch = ledger.recorder.select_notifications(start=position, limit=1000, inclusive_of_start=False)
            if not batch:
                return expected
            for notification in batch:
                expected.add(ledger.mapper.to_domain_event(notification))
            position = batch[-1].id

    def add(self, event: Any) -> None:
        kind, name, key = type(event).__qualname__.split(".")[0], type(event).__name__, str(event.originator_id)
        if kind == "Payment":
            if name == "Requested":
                plan = "points" if event.kind == "POINTS" else event.purpose.get("plan_id")
                self.payments[key] = {"user": event.user_id, "plan": plan, "amount": event.amount, "ok": None, "failed": None}
            elif name == "Succeeded":
                self.payments[key]["ok"] = event.at
            elif name == "Failed":
                self.payments[key]["failed"] = event.at
            elif name == "Refunded":
                paid = self.payments[key]
                self.refunds.append({"user": paid["user"], "plan": paid["plan"], "amount": event.amount, "at": event.at})
        elif kind == "Subscription":
            if name == "Subscribed":
                sub = self.subs[key] = Sub(event.user_id, event.at, event.trial_ends_at)
                sub.states.append((event.at, event.status, event.plan_id, event.cycle, event.list_price, event.price))
                return
            sub = self.subs[key]
            _, status, plan, cycle, list_price, price = sub.states[-1]
            if name == "PeriodPaid":
                status, plan, cycle, list_price, price = event.status, event.plan_id, event.cycle, event.list_price, event.price
                sub.first_paid = sub.first_paid or event.at
            elif name == "PlanChanged":
                plan, list_price, price = event.plan_id, event.list_price, event.price
            elif name in STATUS_EVENTS:
                status = event.status
            new = (event.at, status, plan, cycle, list_price, price)
            if new[1:] != sub.states[-1][1:]:
                sub.states.append(new)

    # ------------------------------------------------------------ helpers
    def bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        return datetime.combine(first, time(0), tzinfo=self.tz), datetime.combine(last + timedelta(days=1), time(0), tzinfo=self.tz)

    def subscribers_at(self, moment: datetime) -> set[str]:
        found = set()
        for sub in self.subs.values():
            state = sub.at(moment)
            if state and state[1] in SUBSCRIBED and state[4] > 0:
                found.add(sub.user)
        return found

    def transitions(self, start: datetime, end: datetime) -> list[tuple[Sub, tuple | None, tuple]]:
        return [
            (sub, sub.states[i - 1] if i else None, state)
            for sub in self.subs.values()
            for i, state in enumerate(sub.states)
            if start <= state[0] < end
        ]

    def annual_subscriptions(self) -> int:
        return sum(1 for sub in self.subs.values() if any(s[3] == "ANNUAL" for s in sub.states))

    def statuses(self) -> set[str]:
        return {s[1] for sub in self.subs.values() for s in sub.states}

    # ------------------------------------------------------------ the metrics
    def metrics(self, first: date, last: date) -> dict[str, Any]:
        start, end = self.bounds(first, last)
        by_plan: dict[str, int] = {}
        succeeded = [p for p in self.payments.values() if p["ok"] and start <= p["ok"] < end]
        for p in succeeded:
            by_plan[p["plan"]] = by_plan.get(p["plan"], 0) + p["amount"]
        refunds = [r for r in self.refunds if start <= r["at"] < end]
        for r in refunds:
            by_plan[r["plan"]] = by_plan.get(r["plan"], 0) - r["amount"]
        failed = sum(1 for p in self.payments.values() if p["failed"] and start <= p["failed"] < end)
        at_end = min(end, self.now)
        mrr = half_up(sum(
            (monthly(s[5], s[3]) for sub in self.subs.values() if (s := sub.at(at_end)) and s[1] in RENEWING), Fraction(0)
        ))
        moves = self.transitions(start, end)
        new = {sub.user for sub, before, after in moves if before is None and after[4] > 0}
        churned = {
            sub.user for sub, before, after in moves
            if before and before[1] in SUBSCRIBED and after[1] in LEFT and after[4] > 0
        }
        ups = downs = 0
        for _, before, after in moves:
            if before and before[2:5] != after[2:5]:
                was, now = monthly(before[4], before[3]), monthly(after[4], after[3])
                ups, downs = ups + (now > was), downs + (now < was)
        trials = [s for s in self.subs.values() if s.trial_ends and start <= s.trial_ends < min(end, self.now)]
        converted = [s for s in trials if s.first_paid and s.first_paid < end]
        active_start = self.subscribers_at(min(start, self.now))
        churn = len(churned) / len(active_start) if active_start else 0.0
        return {
            "from": first, "to": last,
            "revenue": {"total": sum(by_plan.values()), "byPlan": sorted(by_plan.items()), "mrr": mrr, "arr": 12 * mrr},
            "subscribers": {
                "totalActive": len(self.subscribers_at(at_end)), "newSubscribers": len(new),
                "churnedSubscribers": len(churned), "churnRate": churn, "retentionRate": 1.0 - churn,
            },
            "conversions": {
                "trialToPaid": len(converted) / len(trials) if trials else 0.0, "planUpgrades": ups, "planDowngrades": downs,
            },
            "payments": {
                "successRate": len(succeeded) / (len(succeeded) + failed) if succeeded or failed else 0.0,
                "failedPayments": failed, "refunds": len(refunds), "refundedAmount": sum(r["amount"] for r in refunds),
            },
        }

    def months_with(self, sub: Sub, statuses: set[str]) -> set[tuple[int, int]]:
        """Local (year, month)s in which the subscription was in `statuses` on a priced plan."""
        months = set()
        for i, state in enumerate(sub.states):
            if state[1] not in statuses or state[4] <= 0:
                continue
            begin = state[0]
            finish = sub.states[i + 1][0] if i + 1 < len(sub.states) else None
            if finish is not None and finish <= begin:
                continue
            day = begin.astimezone(self.tz)
            last = (finish - timedelta(microseconds=1)) if finish else max(self.now, begin)
            last = last.astimezone(self.tz)
            year, month = day.year, day.month
            while (year, month) <= (last.year, last.month):
                months.add((year, month))
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months

    def cohorts(self, from_month: str, to_month: str) -> list[dict[str, Any]]:
        signups: dict[str, datetime] = {}
        for sub in sorted(self.subs.values(), key=lambda s: s.started):
            signups.setdefault(sub.user, sub.started)
        active: dict[str, set] = {}
        for sub in self.subs.values():
            active.setdefault(sub.user, set()).update(self.months_with(sub, SUBSCRIBED))
        now = self.now.astimezone(self.tz)
        rows, (year, month) = [], map(int, from_month.split("-"))
        while f"{year:04d}-{month:02d}" <= to_month:
            members = [u for u, t in signups.items() if (t.astimezone(self.tz).year, t.astimezone(self.tz).month) == (year, month)]
            span = (now.year - year) * 12 + now.month - month + 1
            retained = []
            for k in range(max(span, 0)):
                y, m = year + (month - 1 + k) // 12, (month - 1 + k) % 12 + 1
                retained.append(sum(1 for u in members if (y, m) in active[u]))
            rows.append({"cohort": f"{year:04d}-{month:02d}", "size": len(members), "retained": retained})
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return rows

    def lifetime_value(self, user: str) -> dict[str, Any]:
        revenue = sum(p["amount"] for p in self.payments.values() if p["user"] == user and p["ok"])
        revenue -= sum(r["amount"] for r in self.refunds if r["user"] == user)
        months: set = set()
        for sub in self.subs.values():
            if sub.user == user:
                months |= self.months_with(sub, PAID)
        return {
            "userId": user, "totalRevenue": revenue, "subscriptionMonths": len(months),
            "averageMonthlyValue": half_up(Fraction(revenue, len(months))) if months else 0,
        }
