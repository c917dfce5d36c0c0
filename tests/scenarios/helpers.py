"""GraphQL snippets and small helpers shared by the subscription scenarios."""
from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from tests.api.conftest import Api

SEOUL = ZoneInfo("Asia/Seoul")
ADMIN = {"user": "ops", "scope": "admin"}

PAYMENT_FIELDS = "id orderId kind amount refundedAmount status failureCode attempt subscriptionId createdAt paidAt"
SUB_FIELDS = f"""id userId status price currency billingCycle plan {{ id }} promoCode startedAt currentPeriodStart
  currentPeriodEnd trialEndsAt nextBillingAt cancelAtPeriodEnd canceledAt cancelReason suspendedAt consecutiveFailures
  pendingPlanChange {{ planId billingCycle effectiveAt }} usage {{ service used limit remaining resetsAt }}
  payments {{ {PAYMENT_FIELDS} }} paymentMethod {{ id }} version"""

SUBSCRIBE = f"""mutation($i: SubscribeInput!) {{ subscribe(input: $i) {{ {SUB_FIELDS} }} }}"""
SUBSCRIPTION = f"""query($id: ID!, $at: DateTime) {{ subscription(id: $id, asOf: $at) {{ {SUB_FIELDS} }} }}"""
CURRENT = f"""query($u: ID) {{ currentSubscription(userId: $u) {{ {SUB_FIELDS} }} }}"""
CHANGE = f"""mutation($i: ChangePlanInput!) {{ changePlan(input: $i) {{ {SUB_FIELDS} }} }}"""
CANCEL = f"""mutation($i: CancelSubscriptionInput!) {{ cancelSubscription(input: $i) {{ {SUB_FIELDS} }} }}"""
RESUME = f"""mutation($id: ID!) {{ resumeSubscription(subscriptionId: $id) {{ {SUB_FIELDS} }} }}"""
UPDATE_METHOD = f"""mutation($id: ID!, $m: ID!) {{ updateSubscriptionPaymentMethod(subscriptionId: $id, paymentMethodId: $m) {{
  {SUB_FIELDS} }} }}"""
USAGE = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) { service used limit remaining resetsAt } }"""
PROMO = """mutation($i: CreatePromoCodeInput!) { createPromoCode(input: $i) {
  code percentOff amountOff durationPeriods maxRedemptions redemptions expiresAt planIds } }"""
OUTCOME = """mutation($m: ID!, $o: SandboxOutcome!) { setSandboxOutcome(paymentMethodId: $m, outcome: $o) { id } }"""
ADVANCE = """mutation($to: DateTime!) { advanceTestClock(to: $to) { job ranAt processed succeeded failed } }"""
NOTIFICATIONS = """query($u: ID, $n: Int) { notifications(userId: $u, first: $n) { id userId kind subject body data createdAt sentAt } }"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def now(api: Api) -> datetime:
    return at(api.gql("{ clock { now } }")["clock"]["now"])


def advance(api: Api, to: datetime | timedelta) -> list[dict[str, Any]]:
    target = now(api) + to if isinstance(to, timedelta) else to
    return api.gql(ADVANCE, {"to": target.isoformat()}, **ADMIN)["advanceTestClock"]


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def subscribe(api: Api, user: str, plan: str = "basic", **fields: Any) -> dict[str, Any]:
    return api.gql(SUBSCRIBE, {"i": {"planId": plan, **fields}}, user=user)["subscribe"]


def subscription(api: Api, user: str, sub_id: str, **kwargs: Any) -> dict[str, Any]:
    return api.gql(SUBSCRIPTION, {"id": sub_id, **kwargs}, user=user)["subscription"]


def set_outcome(api: Api, user: str, method: str, outcome: str) -> None:
    api.gql(OUTCOME, {"m": method, "o": outcome}, user=user)


def notifications(api: Api, user: str) -> list[dict[str, Any]]:
    api.settle_read_models()
    return api.gql(NOTIFICATIONS, {"n": 200}, user=user)["notifications"]


def kinds(api: Api, user: str) -> list[str]:
    """The user's notification kinds, oldest first."""
    return [n["kind"] for n in reversed(notifications(api, user))]


def exact_share(price: int, remaining: timedelta, period: timedelta) -> int:
    """round(price × remaining / period), halves away from zero — computed independently of
    domain.periods with Fractions of microseconds."""
    micro = timedelta(microseconds=1)
    share = Fraction(price) * Fraction(remaining // micro, period // micro)
    whole, rest = divmod(share, 1)
    return int(whole) + (1 if rest >= Fraction(1, 2) else 0)  # shares here are never negative


def usage_of(sub: dict[str, Any], service: str) -> dict[str, Any]:
    return next(u for u in sub["usage"] if u["service"] == service)
