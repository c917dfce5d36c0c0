"""Calendar periods over HTTP: anchored on the start day, clamped to short months (SPEC §3)."""
from __future__ import annotations

from typing import Any

from tests.scenarios.helpers import advance, at, seoul, subscribe, subscription


def period_ends(api: Any, user: str, sub_id: str, count: int) -> list:
    ends = [at(subscription(api, user, sub_id)["currentPeriodEnd"])]
    while len(ends) < count:
        advance(api, ends[-1])  # past the renewal's run, up to the end itself
        ends.append(at(subscription(api, user, sub_id)["currentPeriodEnd"]))
    return ends


def test_jan_31_monthly_clamps_without_drift(api_factory: Any, user: str) -> None:
    api = api_factory(clock_start="2027-01-31T10:00:00+09:00")
    sub = subscribe(api, user, "free")
    assert period_ends(api, user, sub["id"], 4) == [
        seoul(2027, 2, 28, 10), seoul(2027, 3, 31, 10), seoul(2027, 4, 30, 10), seoul(2027, 5, 31, 10)
    ]


def test_jan_31_in_a_leap_year_ends_on_feb_29(api_factory: Any, user: str) -> None:
    api = api_factory(clock_start="2028-01-31T23:30:00+09:00")
    method = api.add_card(user)
    sub = subscribe(api, user, "basic", paymentMethodId=method, skipTrial=True)
    assert period_ends(api, user, sub["id"], 3) == [seoul(2028, 2, 29, 23, 30), seoul(2028, 3, 31, 23, 30), seoul(2028, 4, 30, 23, 30)]
    assert [p["amount"] for p in subscription(api, user, sub["id"])["payments"]] == [9900] * 3


def test_feb_29_annual_renews_on_feb_28(api_factory: Any, user: str) -> None:
    api = api_factory(clock_start="2028-02-29T12:00:00+09:00")
    method = api.add_card(user)
    sub = subscribe(api, user, "premium", paymentMethodId=method, skipTrial=True, billingCycle="ANNUAL")
    assert sub["price"] == 179100
    assert period_ends(api, user, sub["id"], 2) == [seoul(2029, 2, 28, 12), seoul(2030, 2, 28, 12)]
