"""What SPEC §1 "Auth" and the contract's field descriptions allow, stated for the
permission matrix (tests/api/test_permissions.py) independently of the table in
schema/permissions.py, and the callers the matrix tries."""
from __future__ import annotations

import base64
import json
import warnings
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import jwt
import jwt.warnings

from schema.auth import mint_token
from tests.api.conftest import JWT_SECRET

# --- What SPEC says, stated here independently of schema/permissions.py ---------------------


@dataclass(frozen=True)
class Expect:
    """`scopes`: who may call it (for their own data); `others`: who may name another
    user or reach their object; `as_of`: who may, in addition, read another's asOf."""

    scopes: str = ""
    others: str = ""
    as_of: str = ""
    public: bool = False
    any_token: bool = False
    target: str = "none"  # "user": a userId; "object": an id of a user's object; "method": the caller's own card


def own(target: str, others: str = "admin", as_of: str = "") -> Expect:
    """The caller's own data: `user`, plus whoever may act for others."""
    return Expect(scopes=" ".join(dict.fromkeys(["user", *others.split(), *as_of.split()])), others=others,
                  as_of=as_of, target=target)


SPEC: dict[str, Expect] = {
    # "Every GraphQL operation except catalog and clock needs a Bearer token."
    "catalog": Expect(public=True),
    "clock": Expect(public=True),
    "me": Expect(any_token=True),
    # "A user reads and changes only their own data. Naming another userId needs admin."
    "paymentMethods": own("user"),
    "currentSubscription": own("user"),
    "subscriptions": own("user"),
    "subscriptionsPage": own("user"),
    # issue 10: an analyst or auditor token must not list another user's payments.
    "payments": own("user"),
    "paymentsPage": own("user"),
    "notifications": own("user"),
    "notificationsPage": own("user"),
    "exportUserData": own("user"),
    "spendPoints": own("user"),
    "eraseUserData": own("user"),
    # "... ledger events and asOf reads of others need auditor."
    "wallet": own("user", as_of="auditor"),
    "subscription": own("object", as_of="auditor"),
    "events": Expect(scopes="auditor admin"),
    "eventsPage": Expect(scopes="auditor admin"),
    "reconciliation": Expect(scopes="auditor admin"),
    "verifyLedger": Expect(scopes="auditor admin"),
    # "... read-only analytics need analyst."
    "subscriptionMetrics": Expect(scopes="analyst admin"),
    "cohorts": Expect(scopes="analyst admin"),
    "lifetimeValue": own("user", others="admin analyst"),
    "projections": Expect(scopes="analyst auditor admin"),
    "rebuildProjection": Expect(scopes="analyst admin"),
    # Objects named by id: another user's answers as a missing one.
    "removePaymentMethod": own("object"),
    "setSandboxOutcome": own("object"),
    "changePlan": own("object"),
    "cancelSubscription": own("object"),
    "resumeSubscription": own("object"),
    "updateSubscriptionPaymentMethod": own("object"),
    "recordUsage": own("object"),
    # For the caller themself, with their own card only (an admin too cannot use another's card).
    "registerPaymentMethod": Expect(scopes="user admin"),
    "subscribe": Expect(scopes="user admin", target="method"),
    "purchasePoints": Expect(scopes="user admin", target="method"),
    # The contract's descriptions.
    "rewardPoints": Expect(scopes="admin system"),
    "adjustPoints": Expect(scopes="admin"),
    "refundPayment": Expect(scopes="admin"),
    "createPromoCode": Expect(scopes="admin"),
    "runScheduledJobs": Expect(scopes="cron admin"),
    "advanceTestClock": Expect(scopes="admin cron"),
    # Webhooks (docs/webhooks.md): operators' configuration, ADMIN only.
    "webhookEndpoints": Expect(scopes="admin"),
    "webhookDeliveries": Expect(scopes="admin"),
    "webhookDeliveriesPage": Expect(scopes="admin"),
    "createWebhookEndpoint": Expect(scopes="admin"),
    "setWebhookEndpointEnabled": Expect(scopes="admin"),
    "deleteWebhookEndpoint": Expect(scopes="admin"),
    "rotateWebhookEndpointSecret": Expect(scopes="admin"),
    "redeliverWebhook": Expect(scopes="admin"),
    # E-mail (docs/email.md): an operator's resend.
    "resendNotification": Expect(scopes="admin"),
}


# --- Callers ----------------------------------------------------------------------------------


class Who(Enum):
    NO_TOKEN = "no token"
    EXPIRED = "expired token"
    BAD_SIGNATURE = "token signed with another secret"
    HS512 = "token signed with HS512"
    ALG_NONE = "unsigned token (alg none)"
    NO_SCOPE = "valid token without a known scope"
    OWNER = "user on their own object"
    INTRUDER = "user on another user's object"
    ADMIN = "admin"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    CRON = "cron"
    SYSTEM = "system"


BAD_TOKENS = (Who.NO_TOKEN, Who.EXPIRED, Who.BAD_SIGNATURE, Who.HS512, Who.ALG_NONE)


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def token(who: Who, owner: str, intruder: str) -> str | None:
    claims = {"sub": owner, "scope": "user admin", "exp": int(datetime.now().timestamp()) + 600}
    match who:
        case Who.NO_TOKEN:
            return None
        case Who.EXPIRED:
            return mint_token(JWT_SECRET, owner, "user admin", ttl_seconds=-30)
        case Who.BAD_SIGNATURE:
            return mint_token("another-secret-that-is-long-enough-too", owner, "user admin")
        case Who.HS512:  # the right secret, the wrong algorithm
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
                return jwt.encode(claims, JWT_SECRET, algorithm="HS512")
        case Who.ALG_NONE:
            return unsigned(claims)
        case Who.NO_SCOPE:  # unknown scope words are ignored
            return mint_token(JWT_SECRET, owner, "superuser root")
        case Who.OWNER:
            return mint_token(JWT_SECRET, owner, "user")
        case Who.INTRUDER:
            return mint_token(JWT_SECRET, intruder, "user")
    return mint_token(JWT_SECRET, f"{who.value}-1", who.value)


class Outcome(Enum):
    ALLOWED = "allowed"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    AS_MISSING = "answers exactly as a missing id"


def expected(expect: Expect, who: Who, as_of: bool) -> Outcome:
    if expect.public:
        return Outcome.ALLOWED
    if who in BAD_TOKENS:
        return Outcome.UNAUTHENTICATED
    if expect.any_token:
        return Outcome.ALLOWED
    scope = {Who.OWNER: "user", Who.INTRUDER: "user", Who.NO_SCOPE: ""}.get(who, who.value)
    callers = set(expect.scopes.split()) | (set(expect.as_of.split()) if as_of else set())
    if scope not in callers:
        return Outcome.FORBIDDEN
    if expect.target == "none":
        return Outcome.ALLOWED
    if who is Who.OWNER:
        return Outcome.ALLOWED
    if expect.target == "method":  # another's card, even for an admin
        return Outcome.AS_MISSING
    others = set(expect.others.split()) | (set(expect.as_of.split()) if as_of else set())
    if scope in others:
        return Outcome.ALLOWED
    return Outcome.FORBIDDEN if expect.target == "user" else Outcome.AS_MISSING
