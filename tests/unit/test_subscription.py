"""Subscription rules without I/O: the state machine, periods, dunning, refunds,
proration, usage and promo codes (SPEC §3), with hypothesis where money allows."""
from __future__ import annotations

import calendar
import uuid
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.customer import Customer
from domain.errors import Conflict, PromoCodeInvalid, UsageLimitExceeded
from domain.periods import proration_net
from domain.promo import PromoCode
from domain.subscription import Subscription
from domain.subscription_rules import discounted, period_price, split_refund

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 3, 1, 10, tzinfo=SEOUL)


def kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=SEOUL)


def new(plan: str = "basic", price: int = 9900, trial_days: int = 0, cycle: str = "MONTHLY", at: datetime = T0,
        promo: dict | None = None, method: str | None = "pm-1") -> Subscription:
    return Subscription.start(
        subscription_id=str(uuid.uuid4()), user_id="u", plan_id=plan, cycle=cycle, list_price=price, promo=promo,
        payment_method_id=method, trial_days=trial_days, now=at, tz=SEOUL,
    )


def replayed(sub: Subscription) -> Subscription:
    copy = None
    for event in sub.collect_events():
        copy = event.mutate(copy)
    return copy


def renew(sub: Subscription, payment: str = "p") -> None:
    """Pay the due period at its due run (00:00 local on the date it is due)."""
    run = datetime.combine(sub.next_charge_at.astimezone(SEOUL).date(), time(0), tzinfo=SEOUL)
    sub.start_charge(payment, run)
    sub.pay_period(payment, sub.due_number, False, sub.next_terms(), None, run, SEOUL)


def fail(sub: Subscription, code: str = "INSUFFICIENT_FUNDS") -> datetime:
    run = datetime.combine(sub.next_charge_at.astimezone(SEOUL).date(), time(0), tzinfo=SEOUL)
    sub.fail_charge(None, code, True, run, SEOUL)
    return run


def share_oracle(price: int, remaining: timedelta, period: timedelta) -> int:
    """round(price × remaining / period), halves away from zero, in Fractions of microseconds."""
    micro = timedelta(microseconds=1)
    value = Fraction(price) * Fraction(min(max(remaining, timedelta(0)), period) // micro, period // micro)
    floor = value.numerator // value.denominator
    return floor + (1 if value - floor >= Fraction(1, 2) else 0)


def clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


# ------------------------------------------------------------------ lifecycle examples

def test_trial_lasts_trial_days_and_its_end_charge_starts_period_0() -> None:
    sub = new(trial_days=7)
    assert (sub.status, sub.trial_ends_at, sub.next_charge_at, sub.due_number) == ("TRIALING", T0 + timedelta(days=7), T0 + timedelta(days=7), 0)
    renew(sub)
    assert (sub.status, sub.period_number, sub.period_start, sub.period_end) == ("ACTIVE", 0, kst(2026, 3, 8, 10), kst(2026, 4, 8, 10))
    assert replayed(sub).__dict__ == sub.__dict__


def test_dunning_retries_3_and_6_days_after_the_first_failure_then_suspends() -> None:
    sub = new()
    first = fail(sub)
    assert first == kst(2026, 4, 1)
    assert (sub.status, sub.consecutive_failures, sub.next_charge_at) == ("PAST_DUE", 1, kst(2026, 4, 4))
    assert (sub.period_number, sub.period_paid, sub.period_start) == (1, False, kst(2026, 4, 1, 10))
    fail(sub)
    assert (sub.status, sub.consecutive_failures, sub.next_charge_at) == ("PAST_DUE", 2, kst(2026, 4, 7))
    fail(sub, code="CARD_SUSPENDED")
    assert (sub.status, sub.next_charge_at, sub.suspended_at) == ("SUSPENDED", None, kst(2026, 4, 7))
    assert not sub.is_due(kst(2026, 5, 1), SEOUL)
    assert replayed(sub).__dict__ == sub.__dict__


def test_a_user_asked_charge_that_fails_leaves_the_state_as_it_was() -> None:
    sub = new()
    fail(sub)
    before = dict(sub.__dict__)
    sub.start_charge("manual", kst(2026, 4, 2, 12))
    sub.fail_charge("manual", "INSUFFICIENT_FUNDS", False, kst(2026, 4, 2, 12), SEOUL)
    after = sub.__dict__
    for field in ("status", "consecutive_failures", "next_charge_at", "period_number", "period_start", "pending_payment_id"):
        assert after[field] == before[field], field


def test_guards_of_the_state_machine() -> None:
    sub = new()
    with pytest.raises(Conflict):
        sub.resume(T0)
    with pytest.raises(Conflict):
        sub.expire(T0)
    sub.start_charge("p1", T0)
    with pytest.raises(Conflict):
        sub.start_charge("p2", T0)  # no new attempt while one is PENDING
    with pytest.raises(Conflict):
        sub.cancel(None, 0, T0)
    sub.fail_charge("p1", "PROVIDER_ERROR", False, T0, SEOUL)
    sub.schedule_cancel("bye", T0)
    assert (sub.status, sub.next_charge_at, sub.cancel_at_period_end) == ("CANCELING", None, True)
    with pytest.raises(Conflict):
        sub.schedule_cancel("again", T0)
    sub.resume(T0)
    assert (sub.status, sub.next_charge_at) == ("ACTIVE", sub.period_end)
    sub.cancel("now", 0, T0)
    for act in (lambda: sub.resume(T0), lambda: sub.cancel(None, 0, T0), lambda: sub.check_changeable()):
        with pytest.raises(Conflict):
            act()


def test_a_suspended_subscription_restarts_at_the_payment() -> None:
    sub = new()
    for _ in range(3):
        fail(sub)
    paid = kst(2026, 5, 20, 15, 45)
    sub.pay_period("p", sub.period_number + 1, True, sub.next_terms(sub.period_number + 1), "pm-2", paid, SEOUL)
    assert (sub.status, sub.period_start, sub.period_end, sub.payment_method_id) == ("ACTIVE", paid, kst(2026, 6, 20, 15, 45), "pm-2")
    assert (sub.consecutive_failures, sub.usage_window(paid, SEOUL)[0]) == (0, paid)


def test_a_pending_change_applies_at_the_renewal_and_a_new_cycle_re_anchors() -> None:
    sub = new()
    sub.schedule_change("premium", "ANNUAL", 179100, T0)
    assert sub.next_terms()["amount"] == 179100 and sub.plan_id == "basic"
    renew(sub)
    assert (sub.plan_id, sub.cycle, sub.price, sub.pending_change) == ("premium", "ANNUAL", 179100, None)
    assert (sub.period_start, sub.period_end) == (kst(2026, 4, 1, 10), kst(2027, 4, 1, 10))
    renew(sub)
    assert sub.period_end == kst(2028, 4, 1, 10)


def test_customer_holds_one_live_subscription() -> None:
    customer = Customer(user_id="u", at=T0)
    customer.open_subscription("a", T0)
    customer.open_subscription("a", T0)  # the same one again is not a second
    with pytest.raises(Conflict):
        customer.open_subscription("b", T0)
    customer.close_subscription("b", T0)  # closing another one changes nothing
    assert customer.live_subscription == "a"
    customer.close_subscription("a", T0)
    customer.open_subscription("b", T0)
    assert customer.live_subscription == "b"


# ------------------------------------------------------------------ periods (property)

seoul_starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(SEOUL)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=150, deadline=None)
@given(start=seoul_starts, cycle=st.sampled_from(["MONTHLY", "ANNUAL"]), renewals=st.integers(1, 14))
def test_periods_follow_the_start_day_clamped_and_are_contiguous(start: datetime, cycle: str, renewals: int) -> None:
    sub = new(at=start, cycle=cycle)
    step = 1 if cycle == "MONTHLY" else 12
    for _ in range(renewals):
        previous_end = sub.period_end
        renew(sub)
        assert sub.period_start == previous_end
    months = step * (renewals + 1)
    year, month0 = divmod(start.year * 12 + start.month - 1 + months, 12)
    end = sub.period_end.astimezone(SEOUL)
    assert end.date() == clamped(year, month0 + 1, start.day)
    assert end.time() == start.time()
    assert sub.next_charge_at == sub.period_end


def test_jan_31_runs_feb_28_then_mar_31() -> None:
    sub = new(at=kst(2027, 1, 31, 9))
    ends = [sub.period_end]
    for _ in range(3):
        renew(sub)
        ends.append(sub.period_end)
    assert ends == [kst(2027, 2, 28, 9), kst(2027, 3, 31, 9), kst(2027, 4, 30, 9), kst(2027, 5, 31, 9)]


# ------------------------------------------------------------------ money (property)

prices = st.integers(0, 10_000_000)


@settings(max_examples=300, deadline=None)
@given(price=prices.filter(bool), offset=st.integers(-86_400, 32 * 86_400), micro=st.integers(0, 999_999))
def test_cancel_now_refund_matches_the_fraction_oracle(price: int, offset: int, micro: int) -> None:
    sub = new(price=price)
    when = sub.period_start + timedelta(seconds=offset, microseconds=micro)
    refund = sub.refund_due(when)
    assert refund == share_oracle(price, sub.period_end - when, sub.period_end - sub.period_start)
    assert 0 <= refund <= price


def test_refund_is_nothing_for_trials_unpaid_periods_and_free() -> None:
    assert new(trial_days=7).refund_due(T0 + timedelta(days=1)) == 0
    assert new(price=0).refund_due(T0 + timedelta(days=1)) == 0
    unpaid = new()
    fail(unpaid)
    assert unpaid.refund_due(kst(2026, 4, 2)) == 0
    canceling_trial = new(trial_days=7)
    canceling_trial.schedule_cancel(None, T0)
    assert canceling_trial.refund_due(T0 + timedelta(days=1)) == 0


@settings(max_examples=300, deadline=None)
@given(old=prices, new_price=prices, remaining=st.integers(0, 31 * 86_400))
def test_upgrade_then_downgrade_at_the_same_instant_nets_to_zero(old: int, new_price: int, remaining: int) -> None:
    period = 31 * 86_400
    up = proration_net(old, new_price, remaining, period)
    assert up == share_oracle(new_price, timedelta(seconds=remaining), timedelta(seconds=period)) - share_oracle(
        old, timedelta(seconds=remaining), timedelta(seconds=period)
    )
    assert up + proration_net(new_price, old, remaining, period) == 0


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(0, 10**7), available=st.lists(st.integers(0, 10**6), max_size=4))
def test_a_split_refund_never_exceeds_what_each_payment_can_refund(amount: int, available: list[int]) -> None:
    plan = split_refund(amount, list(enumerate(available)))
    assert sum(a for _, a in plan) == min(amount, sum(available))
    assert all(0 < a <= available[i] for i, a in plan)


@settings(max_examples=300, deadline=None)
@given(price=prices, percent=st.integers(1, 100), off=st.integers(1, 10**7))
def test_promo_prices_stay_between_zero_and_the_list_price(price: int, percent: int, off: int) -> None:
    by_percent = discounted(price, {"percent_off": percent})
    assert 0 <= by_percent <= price
    exact = Fraction(price * (100 - percent), 100)
    assert abs(by_percent - exact) <= Fraction(1, 2)
    assert discounted(price, {"amount_off": off}) == max(0, price - off)


def test_a_promo_lasts_its_periods_and_only_on_its_plans() -> None:
    promo = {"code": "X", "percent_off": 50, "duration_periods": 2, "plan_ids": ["basic"]}
    assert [period_price(9900, promo, "basic", n) for n in range(4)] == [4950, 4950, 9900, 9900]
    assert period_price(19900, promo, "premium", 0) == 19900
    assert period_price(9999, {"percent_off": 50}, "basic", 99) == 5000  # 4999.5 rounds away from zero


# ------------------------------------------------------------------ usage

@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 60), uses=st.lists(st.integers(1, 12), max_size=15))
def test_usage_never_passes_the_limit_and_warns_once_at_80_percent(limit: int, uses: list[int]) -> None:
    sub = new()
    used, warnings = 0, 0
    for amount in uses:
        if used + amount > limit:
            with pytest.raises(UsageLimitExceeded):
                sub.record_usage("saju_calculations", amount, limit, T0, SEOUL)
            continue
        sub.record_usage("saju_calculations", amount, limit, T0, SEOUL)
        used += amount
        warnings += sub.collect_events()[-1].warning
    assert sub.used("saju_calculations", sub.usage_window(T0, SEOUL)[0]) == used <= limit
    assert warnings == (1 if used * 5 >= limit * 4 else 0)


def test_usage_resets_with_each_monthly_window_also_on_annual_plans() -> None:
    sub = new(cycle="ANNUAL", price=95040)
    sub.record_usage("saju_calculations", 3, 3, T0, SEOUL)
    with pytest.raises(UsageLimitExceeded):
        sub.record_usage("saju_calculations", 1, 3, kst(2026, 4, 1, 9), SEOUL)
    sub.record_usage("saju_calculations", 3, 3, kst(2026, 4, 1, 10), SEOUL)
    assert sub.usage_window(kst(2026, 4, 1, 10), SEOUL) == (kst(2026, 4, 1, 10), kst(2026, 5, 1, 10))


# ------------------------------------------------------------------ reminders, promo aggregate

def test_reminders_7_3_1_days_before_a_renewal_once_each() -> None:
    sub = new()
    sent = []
    for day in range(2, 32):
        run = kst(2026, 3, day, 9)
        if sub.remind(run, SEOUL):
            sent.append(day)
        assert not sub.remind(run, SEOUL)  # a second run the same morning records nothing
    assert sent == [25, 29, 31]
    free = new(price=0)
    assert not any(free.remind(kst(2026, 3, day, 9), SEOUL) for day in range(2, 32))


def test_promo_code_rules() -> None:
    promo = PromoCode(code="Spring", percent_off=10, amount_off=None, duration_periods=None, max_redemptions=1,
                      expires_at=kst(2026, 4, 1), plan_ids=["basic"], at=T0)
    with pytest.raises(PromoCodeInvalid):
        promo.redeem("s1", "premium", T0)
    promo.redeem("s1", "basic", T0)
    with pytest.raises(PromoCodeInvalid):
        promo.redeem("s2", "basic", T0)  # used up
    promo.release("s1", T0)
    with pytest.raises(PromoCodeInvalid):
        promo.redeem("s2", "basic", kst(2026, 4, 1))  # expired
    promo.redeem("s2", "basic", kst(2026, 3, 31, 23, 59))
    assert promo.redemptions == 1 and PromoCode.create_id("SPRING") == promo.id
