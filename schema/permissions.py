"""Who may call what (SPEC §1 Auth): one table over every Query and Mutation field.

Each root field has one `Rule`. Resolvers never test scopes themselves; they
ask this module, which finds the field's rule from `info`:

- `caller(info)`: the gate. No token (or a bad one) → UNAUTHENTICATED unless
  the field is public; a token without one of the rule's scopes → FORBIDDEN.
- `subject(info, user_id, as_of=...)`: for a field with a `userId` argument,
  the user it acts on. The caller's own id is always allowed once past the
  gate; naming anyone else needs one of `others` (or `others_as_of` for an
  `asOf` read), else FORBIDDEN with the same message whether or not that user
  exists.
- `owner_filter(info, as_of=...)`: for a field that names an object by id
  (subscription, payment method), whose objects the caller may reach: None
  (anyone's) or the caller's own id. An object beyond reach answers NOT_FOUND
  with the very message of a missing one (never a hint that it exists).

The choices where SPEC is silent (documented in docs/permissions.md):
- A role token (admin, analyst, …) is not a customer: acting for oneself
  (`wallet`, `subscribe`, …) needs `user` or a scope that may act for others.
- `me` needs a valid token of any scope; `catalog` and `clock` need none (a bad
  token sent to them is ignored).
- `runScheduledJobs` and `advanceTestClock` take `cron` or `admin`;
  `rewardPoints` takes `admin` or the service scope `system`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from domain.errors import Forbidden
from schema.auth import Caller, Scope
from schema.error_codes import known
from schema.rate_limit import LIMITED_FIELDS


class Root(StrEnum):
    QUERY = "Query"
    MUTATION = "Mutation"


class Access(Enum):
    PUBLIC = "no token needed"
    TOKEN = "any valid token"
    SCOPED = "a token with one of the scopes"


class Target(Enum):
    NONE = "acts on nothing of another user's"
    USER = "a userId argument (default: the caller)"
    OBJECT = "an object named by id; another user's answers as a missing one (NOT_FOUND)"


@dataclass(frozen=True)
class Rule:
    root: Root
    field: str
    access: Access = Access.SCOPED
    scopes: frozenset[Scope] = frozenset()
    """Who may call the field at all (for USER/OBJECT targets: on their own objects)."""
    target: Target = Target.NONE
    others: frozenset[Scope] = frozenset()
    """Who may name another user, or reach another user's object."""
    others_as_of: frozenset[Scope] = frozenset()
    """Who may, in addition, make an `asOf` read of another user's data."""

    def reaches_others(self, scopes: frozenset[str], as_of: bool) -> bool:
        allowed = self.others | (self.others_as_of if as_of else frozenset())
        return bool(allowed & scopes)

    def describe(self) -> str:
        """The scope sentence that starts the field's GraphQL description."""
        if self.access is Access.PUBLIC:
            return "No token needed."
        if self.access is Access.TOKEN:
            return "Any valid token."
        text = f"Scope {_words(self.scopes)}."
        if self.target is not Target.NONE:
            text = f"Scope {_words(self.scopes - self.others - self.others_as_of)} for the caller's own"
            text += f"; {_words(self.others)} for another user's" if self.others else ""
            text += f"; {_words(self.others_as_of)} for another user's asOf read" if self.others_as_of else ""
            text += "."
        if self.target is Target.OBJECT:
            text += " Another user's object answers NOT_FOUND, exactly like a missing one."
        return text


ORDER = tuple(Scope)


def _words(scopes: frozenset[Scope]) -> str:
    names = [s.value.upper() for s in ORDER if s in scopes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _public(root: Root, field: str) -> Rule:
    return Rule(root, field, Access.PUBLIC)


def _token(root: Root, field: str) -> Rule:
    return Rule(root, field, Access.TOKEN)


def _scoped(root: Root, field: str, *scopes: Scope) -> Rule:
    return Rule(root, field, scopes=frozenset(scopes))


def _owned(root: Root, field: str, target: Target, others: tuple[Scope, ...] = (Scope.ADMIN,),
           as_of: tuple[Scope, ...] = ()) -> Rule:
    """The user's own data; `others` may act for anyone (`as_of`: for asOf reads)."""
    return Rule(root, field, scopes=frozenset((Scope.USER, *others, *as_of)), target=target,
                others=frozenset(others), others_as_of=frozenset(as_of))


Q, M = Root.QUERY, Root.MUTATION
U, A, AN, AU, C, S = Scope.USER, Scope.ADMIN, Scope.ANALYST, Scope.AUDITOR, Scope.CRON, Scope.SYSTEM
USER, OBJECT = Target.USER, Target.OBJECT

RULES: tuple[Rule, ...] = (
    _public(Q, "catalog"),
    _public(Q, "clock"),
    _token(Q, "me"),
    _owned(Q, "paymentMethods", USER),
    _owned(Q, "currentSubscription", USER),
    _owned(Q, "subscription", OBJECT, as_of=(AU,)),
    _owned(Q, "subscriptions", USER),
    _owned(Q, "subscriptionsPage", USER),
    _owned(Q, "payments", USER),
    _owned(Q, "paymentsPage", USER),
    _owned(Q, "wallet", USER, as_of=(AU,)),
    _owned(Q, "notifications", USER),
    _owned(Q, "notificationsPage", USER),
    _scoped(Q, "subscriptionMetrics", AN, A),
    _scoped(Q, "cohorts", AN, A),
    _owned(Q, "lifetimeValue", USER, others=(A, AN)),
    _scoped(Q, "projections", A, AN, AU),
    _scoped(Q, "events", A, AU),
    _scoped(Q, "eventsPage", A, AU),
    _owned(Q, "exportUserData", USER),
    _scoped(Q, "reconciliation", A, AU),
    _scoped(M, "registerPaymentMethod", U, A),
    _owned(M, "removePaymentMethod", OBJECT),
    _scoped(M, "subscribe", U, A),
    _owned(M, "changePlan", OBJECT),
    _owned(M, "cancelSubscription", OBJECT),
    _owned(M, "resumeSubscription", OBJECT),
    _owned(M, "updateSubscriptionPaymentMethod", OBJECT),
    _owned(M, "recordUsage", OBJECT),
    _scoped(M, "purchasePoints", U, A),
    _owned(M, "spendPoints", USER),
    _scoped(M, "rewardPoints", A, S),
    _scoped(M, "adjustPoints", A),
    _scoped(M, "refundPayment", A),
    _scoped(M, "createPromoCode", A),
    _scoped(M, "rebuildProjection", A, AN),
    _scoped(M, "verifyLedger", A, AU),
    _owned(M, "eraseUserData", USER),
    _scoped(M, "runScheduledJobs", A, C),
    _scoped(M, "advanceTestClock", A, C),
    _owned(M, "setSandboxOutcome", OBJECT),
    _scoped(Q, "webhookEndpoints", A),
    _scoped(Q, "webhookDeliveries", A),
    _scoped(Q, "webhookDeliveriesPage", A),
    _scoped(M, "createWebhookEndpoint", A),
    _scoped(M, "setWebhookEndpointEnabled", A),
    _scoped(M, "deleteWebhookEndpoint", A),
    _scoped(M, "rotateWebhookEndpointSecret", A),
    _scoped(M, "redeliverWebhook", A),
    _scoped(M, "resendNotification", A),
)

TABLE: dict[tuple[Root, str], Rule] = {(rule.root, rule.field): rule for rule in RULES}
assert len(TABLE) == len(RULES), "a field has two rules"


def rule(root: Root, field: str) -> Rule:
    return TABLE[(root, field)]


def described(root: Root, field: str, text: str = "", *, errors: tuple[str, ...] = ()) -> str:
    """A field's GraphQL description: the scope it needs, then `text`, then its error codes:
    the gate's (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND for an object target), RATE_LIMITED for a
    rate-limited mutation, then `errors` (each must be in `schema.error_codes.TABLE`)."""
    found = rule(root, field)
    codes = [*gate_errors(found), *known(*errors)]
    if root is Root.MUTATION and field in LIMITED_FIELDS:
        codes.append("RATE_LIMITED")
    listed = ", ".join(dict.fromkeys(codes))
    return f"{found.describe()} {text}".strip() + (f" Errors: {listed}." if listed else "")


def gate_errors(found: Rule) -> list[str]:
    """The codes the permission gate itself may answer for a field."""
    codes = [] if found.access is Access.PUBLIC else ["UNAUTHENTICATED"]
    if found.access is Access.SCOPED:
        codes.append("FORBIDDEN")
    if found.target is Target.OBJECT:
        codes.append("NOT_FOUND")
    return codes


def _rule_of(info: Any) -> Rule:
    key = (Root(info.path.typename), info.field_name)
    found = TABLE.get(key)
    if found is None:  # fail closed: a field without a rule answers to nobody
        raise Forbidden(f"{info.field_name} has no permission rule")
    return found


def _gate(info: Any) -> tuple[Rule, Caller | None]:
    found = _rule_of(info)
    if found.access is Access.PUBLIC:
        return found, None
    caller: Caller = info.context.caller  # UNAUTHENTICATED when the token is missing or bad
    if found.access is Access.SCOPED and not caller.has(*found.scopes):
        raise Forbidden(f"needs one of the scopes: {', '.join(s.value for s in ORDER if s in found.scopes)}")
    return found, caller


def caller(info: Any) -> Caller:
    """The caller, once past the field's gate."""
    _, who = _gate(info)
    if who is None:
        raise TypeError(f"{info.field_name} is public: it has no caller to ask for")
    return who


def subject(info: Any, user_id: Any, *, as_of: bool = False) -> str:
    """The user a `userId` field acts on: the caller by default; another user only
    for the rule's `others` (the same refusal whether or not that user exists)."""
    found, who = _gate(info)
    if who is None or found.target is not Target.USER:
        raise TypeError(f"{found.field}'s rule names no userId target")
    named = who.user_id if user_id is None else str(user_id)
    if named != who.user_id and not found.reaches_others(who.scopes, as_of):
        raise Forbidden("not allowed to act for another user")
    return named


def owner_filter(info: Any, *, as_of: bool = False) -> str | None:
    """Whose objects the caller may reach by id: None for anyone's, else only the caller's."""
    found, who = _gate(info)
    if who is None or found.target is not Target.OBJECT:
        raise TypeError(f"{found.field}'s rule names no object target")
    return None if found.reaches_others(who.scopes, as_of) else who.user_id


def reaches(info: Any, owner: str | None, *, as_of: bool = False) -> bool:
    """True when the caller may reach an object owned by `owner` (None: no such object)."""
    allowed = owner_filter(info, as_of=as_of)
    return owner is not None and (allowed is None or allowed == owner)
