"""A scripted 14-month history on the test clock (SPEC §7 analytics): a couple of hundred
users with trials, conversions, upgrades, downgrades, cancellations, failed payments and
refunds, driven through the public API. subscriptionMetrics, cohorts and lifetimeValue
must equal the figures this test computes itself, straight from the ledger's raw
payment and subscription events (tests/scenarios/analytics_expected.py), with none
of the analytics read model's code or tables.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from tests.api.conftest import POOR_CARD, Api, GraphQLError
from tests.scenarios.analytics_expected import Expected
from tests.scenarios.helpers import ADMIN, CANCEL, CHANGE, OUTCOME, SEOUL, advance, now, subscribe

USERS = 200
START = datetime(2026, 3, 1, 10, 0, tzinfo=SEOUL)
END = datetime(2027, 5, 1, 10, 0, tzinfo=SEOUL)
PLANS = ["basic", "premium", "master"]
METRICS = """query($f: Date!, $t: Date!) { subscriptionMetrics(from: $f, to: $t) { from to
  revenue { total byPlan { planId revenue } mrr arr }
  subscribers { totalActive newSubscribers churnedSubscribers churnRate retentionRate }
  conversions { trialToPaid planUpgrades planDowngrades }
  payments { successRate failedPayments refunds refundedAmount } } }"""
COHORTS = """query($f: String!, $t: String!) { cohorts(fromMonth: $f, toMonth: $t) { cohort size retained } }"""
LTV = """query($u: ID!) { lifetimeValue(userId: $u) { userId totalRevenue subscriptionMonths averageMonthlyValue } }"""
PAYMENTS = """query($u: ID) { payments(userId: $u) { id kind status amount } }"""
REFUND = """mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 1000, reason: "goodwill"}) { id } }"""
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) { totalPoints } }"""
ANALYST = {"user": "analyst-1", "scope": "analyst"}
TOLERATED = {"CONFLICT", "PAYMENT_FAILED", "NOT_FOUND"}


def script(prefix: str, rng: random.Random) -> list[tuple[datetime, int, str, str, dict[str, Any]]]:
    """(when, tie-break, user, action, details), in time order."""
    actions = []
    for i in range(USERS):
        user = f"{prefix}-{i:03d}"
        signup = START + timedelta(days=rng.randint(0, 330), hours=rng.randint(0, 11), minutes=rng.randint(0, 59))
        plan = rng.choice(PLANS)
        trial = rng.random() < 0.7
        profile = {
            "plan": plan, "cycle": "ANNUAL" if rng.random() < 0.15 else "MONTHLY", "trial": trial,
            "poor": rng.random() < 0.12, "card": not trial or rng.random() > 0.06,
        }
        actions.append((signup, i, user, "subscribe", profile))
        if rng.random() < 0.12:
            actions.append((signup + timedelta(days=3), i, user, "points", {}))
        roll, later = rng.random(), signup + timedelta(days=rng.randint(30, 60), hours=1)
        if roll < 0.14 and plan != "master":
            actions.append((later, i, user, "change", {"planId": PLANS[PLANS.index(plan) + 1], "proration": "IMMEDIATE"}))
        elif roll < 0.28 and plan != "basic":
            actions.append((later, i, user, "change", {"planId": PLANS[PLANS.index(plan) - 1], "proration": "NEXT_CYCLE"}))
        elif roll < 0.34:
            other = "MONTHLY" if profile["cycle"] == "ANNUAL" else "ANNUAL"
            actions.append((later, i, user, "change", {"planId": plan, "billingCycle": other, "proration": "NEXT_CYCLE"}))
        roll, later = rng.random(), signup + timedelta(days=rng.randint(20, 220), hours=2)
        if roll < 0.16:
            actions.append((later, i, user, "cancel", {"atPeriodEnd": True}))
        elif roll < 0.24:
            actions.append((later, i, user, "cancel", {"atPeriodEnd": False}))
        if rng.random() < 0.08:
            actions.append((signup + timedelta(days=rng.randint(35, 120)), i, user, "card_fails", {}))
        if rng.random() < 0.07:
            actions.append((signup + timedelta(days=15, hours=3), i, user, "refund", {}))
    return sorted((a for a in actions if a[0] < END), key=lambda a: (a[0], a[1], a[3]))


def play(api: Api, actions: list) -> dict[str, dict[str, str]]:
    """Run the script; returns each user's card and subscription ids."""
    state: dict[str, dict[str, str]] = {}
    for when, _, user, action, details in actions:
        if when > now(api):
            advance(api, when)
        mine = state.setdefault(user, {})
        try:
            if action == "subscribe":
                fields = {"billingCycle": details["cycle"], "skipTrial": not details["trial"]}
                if details["card"]:
                    mine["card"] = api.add_card(user, POOR_CARD) if details["poor"] else api.add_card(user)
                    fields["paymentMethodId"] = mine["card"]
                mine["sub"] = subscribe(api, user, details["plan"], **fields)["id"]
            elif action == "points" and "card" in mine:
                api.gql(PURCHASE, {"m": mine["card"]}, user=user)
            elif action == "change" and "sub" in mine:
                api.gql(CHANGE, {"i": {"subscriptionId": mine["sub"], **details}}, user=user)
            elif action == "cancel" and "sub" in mine:
                api.gql(CANCEL, {"i": {"subscriptionId": mine["sub"], **details}}, user=user)
            elif action == "card_fails" and "card" in mine:
                api.gql(OUTCOME, {"m": mine["card"], "o": "INSUFFICIENT_FUNDS"}, user=user)
            elif action == "refund":
                paid = [p for p in api.gql(PAYMENTS, {"u": user}, **ADMIN)["payments"] if p["status"] == "SUCCEEDED" and p["kind"] == "SUBSCRIPTION"]
                if paid:
                    api.gql(REFUND, {"p": paid[0]["id"]}, **ADMIN)
        except GraphQLError as refused:
            # The script does not know the outcomes (declines, dunning): refusals of its later steps are expected.
            assert refused.code in TOLERATED, refused.errors
    advance(api, END)
    api.settle_read_models(timeout=120)
    return state


def month_ranges() -> list[tuple[date, date]]:
    ranges, first = [], date(2026, 3, 1)
    while first < date(2027, 5, 1):
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        ranges.append((first, following - timedelta(days=1)))
        first = following
    return ranges


def as_api(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        "from": expected["from"].isoformat(), "to": expected["to"].isoformat(),
        "revenue": {**expected["revenue"], "byPlan": [{"planId": p, "revenue": r} for p, r in expected["revenue"]["byPlan"]]},
        "subscribers": expected["subscribers"], "conversions": expected["conversions"], "payments": expected["payments"],
    }


def test_analytics_equal_figures_computed_from_the_raw_ledger(api: Api, user: str) -> None:
    state = play(api, script(user, random.Random(20260301)))
    expected = Expected.from_ledger(api.built.ledger, SEOUL, END)

    # The history holds every kind of thing the metrics count, so no figure is trivially zero.
    whole = expected.metrics(date(2026, 3, 1), date(2027, 4, 30))
    assert whole["conversions"]["planUpgrades"] and whole["conversions"]["planDowngrades"]
    assert whole["subscribers"]["churnedSubscribers"] and whole["payments"]["failedPayments"] and whole["payments"]["refunds"]
    assert 0 < whole["conversions"]["trialToPaid"] < 1 and expected.annual_subscriptions() and whole["revenue"]["mrr"]
    assert expected.statuses() >= {"ACTIVE", "CANCELED", "EXPIRED", "SUSPENDED"}

    ranges = month_ranges() + [
        (date(2026, 3, 1), date(2027, 4, 30)), (date(2026, 5, 10), date(2026, 8, 20)), (date(2027, 4, 15), date(2027, 6, 30)),
    ]
    for first, last in ranges:
        served = api.gql(METRICS, {"f": first.isoformat(), "t": last.isoformat()}, **ANALYST)["subscriptionMetrics"]
        served["revenue"]["byPlan"] = sorted(served["revenue"]["byPlan"], key=lambda p: p["planId"])
        assert served == as_api(expected.metrics(first, last)), (first, last)

    cohorts = api.gql(COHORTS, {"f": "2026-03", "t": "2027-04"}, **ANALYST)["cohorts"]
    assert cohorts == expected.cohorts("2026-03", "2027-04")
    assert sum(row["size"] for row in cohorts) == len({u for u in state if "sub" in state[u]})
    for someone in sorted(state):
        assert api.gql(LTV, {"u": someone}, **ANALYST)["lifetimeValue"] == expected.lifetime_value(someone)
