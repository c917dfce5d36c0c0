"""The Subscription aggregate: the lifecycle state machine of SPEC §3.

    TRIALING ─┬─> ACTIVE <──> PAST_DUE ──> SUSPENDED ──(new method paid)──> ACTIVE
              └─> EXPIRED (trial ended without a payment method)
    TRIALING/ACTIVE ──> CANCELING ──> CANCELED (at the period end), or ──> CANCELED now

Periods are numbered from 0 (the first paid period; the trial is -1). Period
`n` spans `period_bounds(anchor, n - anchor_number, cycle)`: the anchor only
moves when a suspended subscription starts afresh or the billing cycle changes,
so clamping never drifts. Every event carries the values it sets (period ends,
next charge date, status), computed once by the command; a replay never redoes
calendar arithmetic, so a changed time zone or catalog cannot rewrite history,
and the read model can copy those fields straight from the events.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.errors import Conflict, UsageLimitExceeded
from domain.periods import local_date, period_bounds
from domain.subscription_rules import REMINDER_DAYS, days_before, period_price, reaches_warning, retry_at
from domain.subscription_state import (  # noqa: F401  (the statuses are imported from here too)
    ACTIVE, CANCELED, CANCELING, CHARGEABLE, ENDED, EXPIRED, PAST_DUE, SUSPENDED, TRIALING, USABLE, SubscriptionReads,
)


class Subscription(SubscriptionReads, Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(subscription_id: str, **_: Any) -> UUID:
        return UUID(subscription_id)

    @classmethod
    def start(
        cls, *, subscription_id: str, user_id: str, plan_id: str, cycle: str, list_price: int,
        promo: dict[str, Any] | None, payment_method_id: str | None, trial_days: int,
        now: datetime, tz: tzinfo, payment_id: str | None = None,
    ) -> Subscription:
        """A new subscription: TRIALING for `trial_days` × 24 h, else ACTIVE in period 0
        (already paid by `payment_id`, or free)."""
        if trial_days > 0:
            trial_end = now + timedelta(days=trial_days)
            status, anchor, number, start, end = TRIALING, trial_end, -1, now, trial_end
        else:
            trial_end, status, anchor, number = None, ACTIVE, now, 0
            start, end = period_bounds(now, 0, cycle, tz)
        return cls(
            subscription_id=subscription_id, user_id=user_id, plan_id=plan_id, cycle=cycle,
            list_price=list_price, promo=promo, payment_method_id=payment_method_id, status=status,
            started_at=now, trial_ends_at=trial_end, anchor=anchor, period_number=number,
            period_start=start, period_end=end, price=period_price(list_price, promo, plan_id, 0),
            next_charge_at=end, payment_id=payment_id, request_print=None, at=now,
        )

    @event("Subscribed")
    def __init__(
        self, subscription_id: str, user_id: str, plan_id: str, cycle: str, list_price: int,
        promo: dict[str, Any] | None, payment_method_id: str | None, status: str, started_at: datetime,
        trial_ends_at: datetime | None, anchor: datetime, period_number: int, period_start: datetime,
        period_end: datetime, price: int, next_charge_at: datetime, payment_id: str | None,
        request_print: str | None, at: datetime,
    ) -> None:
        self.user_id, self.plan_id, self.cycle = user_id, plan_id, cycle
        self.list_price, self.promo, self.price = list_price, promo, price
        self.payment_method_id = payment_method_id
        self.status, self.started_at, self.trial_ends_at = status, started_at, trial_ends_at
        self.anchor, self.anchor_number, self.usage_anchor = anchor, max(period_number, 0), anchor
        self.period_number, self.period_start, self.period_end = period_number, period_start, period_end
        self.period_paid = True  # nothing is owed for the trial, period 0 is paid or free
        self.next_charge_at: datetime | None = next_charge_at
        self.period_payments = [payment_id] if payment_id else []
        self.payment_ids = [payment_id] if payment_id else []
        self.pending_payment_id: str | None = None
        self.attempts = 0  # payments started for the period being charged (order ids, `attempt`)
        self.consecutive_failures = 0
        self.first_failed_on: str | None = None
        self.cancel_at_period_end = False
        self.canceled_at: datetime | None = None
        self.cancel_reason: str | None = None
        self.suspended_at: datetime | None = None
        self.resume_status: str | None = None
        self.pending_change: dict[str, Any] | None = None
        self.usage_window_start: datetime | None = None
        self.usage: dict[str, int] = {}
        self.reminders: list[str] = []
        # `request_print` and RequestNoted: idempotency keys were kept on the subscription
        # before the ledger had one mechanism for them (IdempotencyRecord); kept to replay them.
        self.request_prints: dict[str, str] = {"subscribe": request_print} if request_print else {}

    # ------------------------------------------------------------ charging
    def start_charge(self, payment_id: str, at: datetime, *, period: bool = True) -> None:
        """A payment of this subscription is recorded PENDING; `period` charges (not a
        proration) count as attempts at paying the due period."""
        self.check_no_charge_in_flight()
        self._charge_started(payment_id=payment_id, period=period, at=at)

    def pay_period(
        self, payment_id: str | None, number: int, restart: bool, terms: dict[str, Any],
        method_id: str | None, now: datetime, tz: tzinfo,
    ) -> None:
        """Period `number` is paid (or free): it becomes the current period, ACTIVE.
        `restart` (a suspended subscription) anchors a fresh period at `now`."""
        anchor, anchor_number, usage_anchor = self.anchor, self.anchor_number, self.usage_anchor
        if restart:
            anchor, anchor_number, usage_anchor = now, number, now
        elif terms["cycle"] != self.cycle:
            anchor, anchor_number = self.bounds(number, tz)[0], number
        start, end = period_bounds(anchor, number - anchor_number, terms["cycle"], tz)
        self._period_paid(
            payment_id=payment_id, number=number, anchor=anchor, anchor_number=anchor_number,
            usage_anchor=usage_anchor, period_start=start, period_end=end, plan_id=terms["plan_id"],
            cycle=terms["cycle"], list_price=terms["list_price"],
            price=period_price(terms["list_price"], self.promo, terms["plan_id"], number),
            payment_method_id=method_id or self.payment_method_id, applies_change=terms["applies_change"],
            status=ACTIVE, next_charge_at=end, at=now,
        )

    def fail_charge(
        self, payment_id: str | None, decline_code: str, scheduled: bool, now: datetime, tz: tzinfo,
    ) -> None:
        """A failed attempt. A scheduled one (renewal, trial end, retry) counts for dunning;
        one asked for by the user (a new payment method) leaves the state as it was."""
        failures, first, status = self.consecutive_failures, self.first_failed_on, self.status
        number, start, end, paid = self.period_number, self.period_start, self.period_end, self.period_paid
        next_charge_at, suspended_at, period_payments = self.next_charge_at, self.suspended_at, self.period_payments
        if scheduled:
            failures += 1
            if failures == 1:
                first = local_date(now, tz).isoformat()
            if paid:  # the unpaid period starts anyway: service goes on while dunning
                number, paid, period_payments = self.due_number, False, []
                start, end = self.bounds(number, tz)
            next_charge_at = retry_at(datetime.fromisoformat(first).date(), failures, tz)
            status = PAST_DUE if next_charge_at is not None else SUSPENDED
            suspended_at = now if status == SUSPENDED else None
        self._charge_failed(
            payment_id=payment_id, decline_code=decline_code, hard_method=None, counted=scheduled,
            consecutive_failures=failures, first_failed_on=first, period_number=number, period_start=start,
            period_end=end, period_paid=paid, period_payments=list(period_payments), status=status,
            next_charge_at=next_charge_at, suspended_at=suspended_at, at=now,
        )

    # ------------------------------------------------------------ canceling
    def schedule_cancel(self, reason: str | None, now: datetime) -> None:
        if self.status not in (TRIALING, ACTIVE):
            raise Conflict(f"subscription {self.id} is {self.status}: it cannot be canceled at the period end")
        self._cancel_scheduled(
            reason=reason, resume_status=self.status, status=CANCELING, cancel_at_period_end=True,
            next_charge_at=None, at=now,
        )

    def cancel(self, reason: str | None, refunded: int, now: datetime) -> None:
        self.check_live()
        self.check_no_charge_in_flight()
        self._canceled(
            reason=reason if reason is not None else self.cancel_reason, refunded=refunded,
            status=CANCELED, next_charge_at=None, at=now,
        )

    def resume(self, now: datetime) -> None:
        if self.status != CANCELING:
            raise Conflict(f"subscription {self.id} is {self.status}: only a CANCELING one can be resumed")
        status = self.resume_status or ACTIVE
        self._resumed(status=status, cancel_at_period_end=False, next_charge_at=self.period_end, at=now)

    def expire(self, now: datetime) -> None:
        if self.status != TRIALING:
            raise Conflict(f"subscription {self.id} is {self.status}: only a trial expires")
        self._expired(status=EXPIRED, next_charge_at=None, at=now)

    # ------------------------------------------------------------ plan, method, usage, reminders
    def schedule_change(self, plan_id: str, cycle: str, list_price: int, now: datetime) -> None:
        self.check_changeable()
        change = {"plan_id": plan_id, "cycle": cycle, "list_price": list_price, "effective_at": self.period_end}
        self._change_scheduled(pending_change=change, at=now)

    def clear_change(self, now: datetime) -> None:
        if self.pending_change is not None:
            self._change_scheduled(pending_change=None, at=now)

    def change_now(self, plan_id: str, list_price: int, payment_id: str | None, net: int, now: datetime) -> None:
        self.check_changeable()
        number = max(self.period_number, 0)
        self._plan_changed(
            plan_id=plan_id, list_price=list_price, price=period_price(list_price, self.promo, plan_id, number),
            payment_id=payment_id, net=net, at=now,
        )

    def set_payment_method(self, method_id: str, now: datetime) -> None:
        self.check_live()
        if method_id != self.payment_method_id:
            self._payment_method_set(payment_method_id=method_id, at=now)

    def record_usage(self, service: str, amount: int, limit: int | None, now: datetime, tz: tzinfo) -> None:
        if self.status not in USABLE:
            raise Conflict(f"subscription {self.id} is {self.status}: usage cannot be recorded")
        start, end = self.usage_window(now, tz)
        used = self.used(service, start)
        if limit is not None and used + amount > limit:
            raise UsageLimitExceeded(service, limit, used)
        self._usage_recorded(
            service=service, amount=amount, used_after=used + amount, limit=limit, window_start=start,
            window_end=end, warning=reaches_warning(used, used + amount, limit), at=now,
        )

    def remind(self, now: datetime, tz: tzinfo) -> bool:
        """Record the reminder the 09:00 run of `now` owes, if any (each one once)."""
        amount = self.next_terms()["amount"]
        if self.status == TRIALING:
            kind, target = "TRIAL_ENDING", self.trial_ends_at
        elif self.status == ACTIVE and self.next_charge_at is not None and amount > 0:
            kind, target = "RENEWAL_REMINDER", self.next_charge_at
        else:
            return False
        days = days_before(target, now, tz)
        if days not in REMINDER_DAYS[kind] or f"{kind}:{target.isoformat()}:{days}" in self.reminders:
            return False
        self._reminded(kind=kind, days_before=days, due_at=target, amount=amount, at=now)
        return True

    # ------------------------------------------------------------ events
    @event("ChargeStarted")
    def _charge_started(self, payment_id: str, period: bool, at: datetime) -> None:
        self.pending_payment_id = payment_id
        self.payment_ids.append(payment_id)
        self.attempts += 1 if period else 0

    @event("PeriodPaid")
    def _period_paid(
        self, payment_id: str | None, number: int, anchor: datetime, anchor_number: int, usage_anchor: datetime,
        period_start: datetime, period_end: datetime, plan_id: str, cycle: str, list_price: int, price: int,
        payment_method_id: str | None, applies_change: bool, status: str, next_charge_at: datetime, at: datetime,
    ) -> None:
        self.period_number, self.period_start, self.period_end, self.period_paid = number, period_start, period_end, True
        self.anchor, self.anchor_number, self.usage_anchor = anchor, anchor_number, usage_anchor
        self.plan_id, self.cycle, self.list_price, self.price = plan_id, cycle, list_price, price
        self.payment_method_id = payment_method_id
        self.status, self.next_charge_at = status, next_charge_at
        self.period_payments = [payment_id] if payment_id else []
        self.pending_payment_id, self.attempts = None, 0
        self.consecutive_failures, self.first_failed_on, self.suspended_at = 0, None, None
        if applies_change:
            self.pending_change = None

    @event("ChargeFailed")
    def _charge_failed(
        self, payment_id: str | None, decline_code: str, hard_method: str | None, counted: bool,
        consecutive_failures: int, first_failed_on: str | None, period_number: int, period_start: datetime,
        period_end: datetime, period_paid: bool, period_payments: list[str], status: str,
        next_charge_at: datetime | None, suspended_at: datetime | None, at: datetime,
    ) -> None:
        if payment_id is not None and payment_id == self.pending_payment_id:
            self.pending_payment_id = None
        # `hard_method`: older events named a hard-declined method here; the customer's
        # payment method remembers hard declines now (PaymentMethodHardDeclined).
        self.consecutive_failures, self.first_failed_on = consecutive_failures, first_failed_on
        self.period_number, self.period_start, self.period_end = period_number, period_start, period_end
        self.period_paid, self.status, self.next_charge_at = period_paid, status, next_charge_at
        self.suspended_at, self.period_payments = suspended_at, period_payments

    @event("CancelScheduled")
    def _cancel_scheduled(
        self, reason: str | None, resume_status: str, status: str, cancel_at_period_end: bool,
        next_charge_at: None, at: datetime,
    ) -> None:
        self.cancel_reason, self.resume_status, self.status = reason, resume_status, status
        self.cancel_at_period_end, self.next_charge_at = cancel_at_period_end, next_charge_at

    @event("Canceled")
    def _canceled(self, reason: str | None, refunded: int, status: str, next_charge_at: None, at: datetime) -> None:
        self.cancel_reason, self.status, self.next_charge_at, self.canceled_at = reason, status, next_charge_at, at
        self.pending_change = None

    @event("Resumed")
    def _resumed(self, status: str, cancel_at_period_end: bool, next_charge_at: datetime, at: datetime) -> None:
        self.status, self.cancel_at_period_end, self.next_charge_at = status, cancel_at_period_end, next_charge_at
        self.cancel_reason = self.resume_status = None

    @event("Expired")
    def _expired(self, status: str, next_charge_at: None, at: datetime) -> None:
        self.status, self.next_charge_at = status, next_charge_at

    @event("PlanChangeScheduled")
    def _change_scheduled(self, pending_change: dict[str, Any] | None, at: datetime) -> None:
        self.pending_change = pending_change

    @event("PlanChanged")
    def _plan_changed(
        self, plan_id: str, list_price: int, price: int, payment_id: str | None, net: int, at: datetime
    ) -> None:
        self.plan_id, self.list_price, self.price = plan_id, list_price, price
        self.pending_change = None
        if payment_id is not None:
            self.period_payments.append(payment_id)
            if payment_id == self.pending_payment_id:
                self.pending_payment_id = None

    @event("PaymentMethodSet")
    def _payment_method_set(self, payment_method_id: str, at: datetime) -> None:
        self.payment_method_id = payment_method_id

    @event("UsageRecorded")
    def _usage_recorded(
        self, service: str, amount: int, used_after: int, limit: int | None, window_start: datetime,
        window_end: datetime, warning: bool, at: datetime,
    ) -> None:
        if self.usage_window_start != window_start:
            self.usage_window_start, self.usage = window_start, {}
        self.usage[service] = used_after

    @event("Reminded")
    def _reminded(self, kind: str, days_before: int, due_at: datetime, amount: int, at: datetime) -> None:
        # Only reminders of dates still ahead matter; older keys are dropped to keep state small.
        self.reminders = [*self.reminders[-7:], f"{kind}:{due_at.isoformat()}:{days_before}"]

    @event("RequestNoted")
    def _request_noted(self, key: str, fingerprint: str, at: datetime) -> None:
        self.request_prints[key] = fingerprint
