"""Subjects and bodies of the outbox's notifications, from their data.

Plain text on purpose: the sender (log, later SMTP) decides the presentation; the
structured `data` travels with each notification for any richer template.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


def _won(amount: Any) -> str:
    return f"{amount:,} won" if isinstance(amount, int) else "the amount due"


def _day(iso: str | None) -> str:
    # Customers read dates in the service's time zone.
    return datetime.fromisoformat(iso).astimezone(SEOUL).strftime("%Y-%m-%d") if iso else "-"


def render(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    plan = data.get("planId")
    if kind == "WELCOME":
        trial = f" Your free trial runs until {_day(data['trialEndsAt'])}." if data.get("trialEndsAt") else ""
        return f"Welcome to the {plan} plan", f"Your {plan} subscription is {data['status'].lower()}.{trial}"
    if kind == "PAYMENT_SUCCEEDED":
        return "Payment received", f"We received {_won(data['amount'])} for {data['orderName']}."
    if kind == "PAYMENT_FAILED":
        retry = f" We will try again on {_day(data['retryAt'])}." if data.get("retryAt") else ""
        return "Payment failed", f"A payment of {_won(data.get('amount'))} failed ({data['declineCode']}).{retry}"
    if kind == "SUBSCRIPTION_SUSPENDED":
        return "Subscription suspended", (
            f"Your {plan} subscription is suspended after {data['failures']} failed payments. "
            "Update your payment method to continue."
        )
    if kind == "SUBSCRIPTION_CANCELED":
        refund = f" {_won(data['refunded'])} will be refunded." if data.get("refunded") else ""
        return "Subscription canceled", f"Your {plan} subscription is canceled.{refund}"
    if kind == "USAGE_WARNING":
        return "Usage limit almost reached", (
            f"You used {data['used']} of {data['limit']} {data['service']} this month; "
            f"the quota resets on {_day(data['resetsAt'])}."
        )
    if kind == "TRIAL_ENDING":
        return "Your trial is ending", f"Your {plan} trial ends on {_day(data['at'])} ({data['daysBefore']} day(s) left)."
    if kind == "RENEWAL_REMINDER":
        return "Upcoming renewal", f"Your {plan} subscription renews on {_day(data['at'])} for {_won(data['amount'])}."
    if kind == "POINTS_EXPIRING":
        return "Points expiring soon", f"{data['points']:,} of your points expire on {_day(data['expiresAt'])}."
    if kind == "POINTS_REWARDED":
        return "Points rewarded", f"You earned {data['points']:,} points ({data['activity']})."
    return kind, kind
