"""Analytics over HTTP (SPEC §7) on a small, hand-checked history; the scripted
14-month history is tests/scenarios/test_analytics.py."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.conftest import Api

METRICS = """query($f: Date!, $t: Date!) { subscriptionMetrics(from: $f, to: $t) { from to
  revenue { total byPlan { planId revenue } mrr arr }
  subscribers { totalActive newSubscribers churnedSubscribers churnRate retentionRate }
  conversions { trialToPaid planUpgrades planDowngrades }
  payments { successRate failedPayments refunds refundedAmount } } }"""
COHORTS = """query($f: String!, $t: String!) { cohorts(fromMonth: $f, toMonth: $t) { cohort size retained } }"""
LTV = """query($u: ID!) { lifetimeValue(userId: $u) { userId totalRevenue subscriptionMonths averageMonthlyValue } }"""
SUBSCRIBE = """mutation($p: ID!, $c: BillingCycle!, $m: ID, $s: Boolean!) {
  subscribe(input: {planId: $p, billingCycle: $c, paymentMethodId: $m, skipTrial: $s}) { id status price } }"""
ADVANCE = """mutation($to: DateTime!) { advanceTestClock(to: $to) { job } }"""
ANALYST = {"user": "analyst-1", "scope": "analyst"}


def now_of(api: Api) -> datetime:
    return datetime.fromisoformat(api.gql("{ clock { now } }")["clock"]["now"])


def test_mrr_counts_annual_plans_as_a_twelfth_and_revenue_adds_up(api: Api, user: str) -> None:
    monthly, annual, trial = f"{user}-m", f"{user}-a", f"{user}-t"
    assert api.gql(SUBSCRIBE, {"p": "basic", "c": "MONTHLY", "m": api.add_card(monthly), "s": True}, user=monthly)["subscribe"]["price"] == 9900
    assert api.gql(SUBSCRIBE, {"p": "premium", "c": "ANNUAL", "m": api.add_card(annual), "s": True}, user=annual)["subscribe"]["price"] == 179100
    assert api.gql(SUBSCRIBE, {"p": "master", "c": "MONTHLY", "m": api.add_card(trial), "s": False}, user=trial)["subscribe"]["status"] == "TRIALING"
    api.settle_read_models()
    today = now_of(api).date().isoformat()  # 2026-03-01 in Seoul
    m = api.gql(METRICS, {"f": today, "t": today}, **ANALYST)["subscriptionMetrics"]
    assert m["revenue"]["mrr"] == 9900 + 179100 // 12 == 24825
    assert m["revenue"]["arr"] == 12 * 24825
    assert m["revenue"]["total"] == 9900 + 179100
    assert sorted((p["planId"], p["revenue"]) for p in m["revenue"]["byPlan"]) == [("basic", 9900), ("premium", 179100)]
    assert m["subscribers"] == {
        "totalActive": 3, "newSubscribers": 3, "churnedSubscribers": 0, "churnRate": 0.0, "retentionRate": 1.0
    }
    assert m["payments"] == {"successRate": 1.0, "failedPayments": 0, "refunds": 0, "refundedAmount": 0}
    assert api.gql(COHORTS, {"f": "2026-02", "t": "2026-03"}, **ANALYST)["cohorts"] == [
        {"cohort": "2026-02", "size": 0, "retained": [0, 0]},
        {"cohort": "2026-03", "size": 3, "retained": [3]},
    ]
    assert api.gql(LTV, {"u": annual}, user=annual)["lifetimeValue"] == {
        "userId": annual, "totalRevenue": 179100, "subscriptionMonths": 1, "averageMonthlyValue": 179100
    }

    # Two months on: the trial converted (master, 39,900), the monthly one renewed twice.
    api.gql(ADVANCE, {"to": (now_of(api) + timedelta(days=61)).isoformat()}, user="ops", scope="admin")
    api.settle_read_models()
    m = api.gql(METRICS, {"f": "2026-03-01", "t": "2026-04-30"}, **ANALYST)["subscriptionMetrics"]
    assert m["revenue"]["mrr"] == 9900 + 14925 + 39900
    assert m["conversions"]["trialToPaid"] == 1.0
    assert m["revenue"]["total"] == 9900 * 2 + 179100 + 39900 * 2
    assert api.gql(LTV, {"u": monthly}, **ANALYST)["lifetimeValue"]["subscriptionMonths"] == 3


def test_analytics_need_the_analyst_scope_and_refuse_bad_input(api: Api, user: str) -> None:
    assert api.error(METRICS, {"f": "2026-03-01", "t": "2026-03-31"}, user=user).code == "FORBIDDEN"
    assert api.error(COHORTS, {"f": "2026-03", "t": "2026-03"}, user=user).code == "FORBIDDEN"
    assert api.error(LTV, {"u": f"{user}-other"}, user=user).code == "FORBIDDEN"
    assert api.gql(LTV, {"u": user}, user=user)["lifetimeValue"]["totalRevenue"] == 0
    assert api.gql(METRICS, {"f": "2026-03-01", "t": "2026-03-31"}, user="ops", scope="admin")["subscriptionMetrics"]["to"] == "2026-03-31"
    for variables in ({"f": "2026-04-01", "t": "2026-03-31"}, {"f": "2026-13-01", "t": "2026-03-31"}, {"f": "2016-01-01", "t": "2026-03-31"}):
        assert api.error(METRICS, variables, **ANALYST).code == "BAD_USER_INPUT"
    for variables in ({"f": "2026-04", "t": "2026-03"}, {"f": "2026-3", "t": "2026-04"}, {"f": "2026-00", "t": "2026-04"}, {"f": "2000-01", "t": "2026-04"}):
        assert api.error(COHORTS, variables, **ANALYST).code == "BAD_USER_INPUT"
