"""The permission matrix (SPEC §1 Auth, issue 10): every Query and Mutation field of
the served schema × every kind of caller, against one shared server per database.

`SPEC` (tests/api/permission_spec.py) states, in the tests' own words, who SPEC
"Auth" and the fields' descriptions let call each field. The tests check:
- the served schema's root fields are exactly the fields of `schema/permissions.py`'s
  table, and the table says what `SPEC` says (so the table cannot drift);
- each field answers each caller as `SPEC` says, over real HTTP: refused → exactly
  UNAUTHENTICATED or FORBIDDEN, allowed → neither; another user's object or user id
  answers with the code and message of a missing one;
- a refused call changes nothing: the ledger's head position and the gateway's
  charges and refunds are the same after it.
"""
from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from schema import permissions
from schema.auth import SCOPES, Scope
from schema.build import schema as served_schema
from schema.permissions import Access, Root, Target
from subledger.app import build
from tests.api.conftest import GOOD_CARD, Api, make_settings, module_database_url
from tests.api.permission_spec import BAD_TOKENS, SPEC, Outcome, Who, expected, token
from tests.servers import serve_asgi

REFUSALS = {"UNAUTHENTICATED", "FORBIDDEN"}


def served_root_fields() -> set[tuple[Root, str]]:
    gql = served_schema._schema
    return {(root, name) for root, kind in ((Root.QUERY, gql.query_type), (Root.MUTATION, gql.mutation_type))
            for name in kind.fields}


def test_the_table_covers_exactly_the_served_fields() -> None:
    assert set(permissions.TABLE) == served_root_fields()
    assert set(SPEC) == {name for _, name in served_root_fields()}
    assert set(SCOPES) == {scope.value for scope in Scope}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_the_table_says_what_spec_says(name: str) -> None:
    expect = SPEC[name]
    (rule,) = [r for r in permissions.RULES if r.field == name]
    if expect.public or expect.any_token:
        assert rule.access is (Access.PUBLIC if expect.public else Access.TOKEN)
        return
    assert rule.access is Access.SCOPED
    assert {s.value for s in rule.scopes} == set(expect.scopes.split())
    assert {s.value for s in rule.others} == set(expect.others.split())
    assert {s.value for s in rule.others_as_of} == set(expect.as_of.split())
    assert rule.target is {"user": Target.USER, "object": Target.OBJECT}.get(expect.target, Target.NONE)
    # The field's description starts with the scope it needs.
    kind = served_schema._schema.query_type if rule.root is Root.QUERY else served_schema._schema.mutation_type
    assert kind.fields[name].description.startswith(rule.describe())


# --- The world: a user with a card, a subscription, a payment and points ----------------------


@dataclass
class Names:
    user: str
    method: str
    subscription: str
    payment: str
    now: str = ""
    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def ids(self) -> list[str]:
        return [self.user, self.method, self.subscription, self.payment]


def method_id_of(owner: str) -> str:
    return f"pm_{base64.urlsafe_b64encode(owner.encode()).decode().rstrip('=')}_{uuid.uuid4().hex[:8]}"


@dataclass
class Case:
    field: str
    document: str
    variables: Callable[[Names], dict[str, Any]] = lambda n: {}
    as_of: bool = False

    @property
    def id(self) -> str:
        return f"{self.field}(asOf)" if self.as_of else self.field


U = lambda n: {"u": n.user}  # noqa: E731
S = lambda n: {"s": n.subscription}  # noqa: E731
MTH = lambda n: {"m": n.method}  # noqa: E731

CASES = [
    Case("catalog", "{ catalog { plans { id } } }"),
    Case("clock", "{ clock { now } }"),
    Case("me", "{ me }"),
    Case("paymentMethods", "query($u: ID) { paymentMethods(userId: $u) { id } }", U),
    Case("currentSubscription", "query($u: ID) { currentSubscription(userId: $u) { id } }", U),
    Case("subscription", "query($s: ID!) { subscription(id: $s) { id } }", S),
    Case("subscription", "query($s: ID!, $t: DateTime) { subscription(id: $s, asOf: $t) { id } }",
         lambda n: {"s": n.subscription, "t": n.now}, as_of=True),
    Case("subscriptions", "query($u: ID) { subscriptions(userId: $u) { id } }", U),
    Case("subscriptionsPage", "query($u: ID) { subscriptionsPage(userId: $u) { items { id } } }", U),
    Case("payments", "query($u: ID) { payments(userId: $u) { id } }", U),
    Case("paymentsPage", "query($u: ID) { paymentsPage(userId: $u) { items { id } } }", U),
    Case("wallet", "query($u: ID) { wallet(userId: $u) { totalBalance } }", U),
    Case("wallet", "query($u: ID, $t: DateTime) { wallet(userId: $u, asOf: $t) { totalBalance } }",
         lambda n: {"u": n.user, "t": n.now}, as_of=True),
    Case("notifications", "query($u: ID) { notifications(userId: $u) { id } }", U),
    Case("notificationsPage", "query($u: ID) { notificationsPage(userId: $u) { items { id } } }", U),
    Case("subscriptionMetrics", '{ subscriptionMetrics(from: "2026-01-01", to: "2026-03-31") { from } }'),
    Case("cohorts", '{ cohorts(fromMonth: "2026-01", toMonth: "2026-03") { cohort } }'),
    Case("lifetimeValue", "query($u: ID!) { lifetimeValue(userId: $u) { totalRevenue } }", U),
    Case("projections", "{ projections { name } }"),
    Case("events", "query($u: ID) { events(userId: $u, first: 5) { position } }", U),
    Case("eventsPage", "query($u: ID) { eventsPage(userId: $u, first: 5) { items { position } } }", U),
    Case("exportUserData", "query($u: ID) { exportUserData(userId: $u) { userId } }", U),
    Case("reconciliation", "{ reconciliation { clean } }"),
    Case("collections", "{ collections { items { attempts } } }"),
    Case("subscriptionsByStatus", "{ subscriptionsByStatus { status count } }"),
    Case("registerPaymentMethod", "mutation($c: String!) { registerPaymentMethod(input: "
         f'{{provider: SANDBOX, authKey: "{GOOD_CARD}", customerKey: $c}}) {{ id }} }}', lambda n: {"c": n.unique}),
    Case("beginPaymentMethodRegistration", "mutation($c: String!) { beginPaymentMethodRegistration(input: "
         '{provider: SANDBOX, customerKey: $c, approvalUrl: "https://a.example/ok", cancelUrl: "https://a.example/no", '
         'failUrl: "https://a.example/fail"}) { registrationId } }', lambda n: {"c": n.unique}),
    Case("removePaymentMethod", "mutation($m: ID!) { removePaymentMethod(id: $m) { id } }", MTH),
    Case("subscribe", 'mutation($m: ID) { subscribe(input: {planId: "basic", paymentMethodId: $m, skipTrial: true}) { id } }',
         MTH),
    Case("changePlan", 'mutation($s: ID!) { changePlan(input: {subscriptionId: $s, planId: "premium"}) { id } }', S),
    Case("cancelSubscription", "mutation($s: ID!) { cancelSubscription(input: {subscriptionId: $s}) { id } }", S),
    Case("resumeSubscription", "mutation($s: ID!) { resumeSubscription(subscriptionId: $s) { id } }", S),
    Case("updateSubscriptionPaymentMethod",
         "mutation($s: ID!, $m: ID!) { updateSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $m) { id } }",
         lambda n: {"s": n.subscription, "m": n.method}),
    Case("recordUsage",
         'mutation($s: ID!) { recordUsage(input: {subscriptionId: $s, service: "saju_calculations"}) { used } }', S),
    Case("purchasePoints", 'mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) '
         "{ totalPoints } }", MTH),
    Case("spendPoints", "mutation($u: ID, $k: String!) { spendPoints(input: {amount: 10, serviceId: $k, userId: $u}) "
         "{ pointsSpent } }", lambda n: {"u": n.user, "k": n.unique}),
    Case("rewardPoints", 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "social_share"}) { amount } }', U),
    Case("adjustPoints", 'mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 5, reason: "matrix"}) { amount } }',
         U),
    Case("refundPayment", 'mutation($p: ID!) { refundPayment(input: {paymentId: $p, reason: "matrix"}) { id } }',
         lambda n: {"p": n.payment}),
    Case("settlePaymentFromProvider", 'mutation($p: ID!) { settlePaymentFromProvider(paymentId: $p, '
         'providerPaymentKey: "T1") { id } }', lambda n: {"p": n.payment}),
    Case("createPromoCode", "mutation($c: String!) { createPromoCode(input: {code: $c, percentOff: 10}) { code } }",
         lambda n: {"c": f"M{n.unique}".upper()}),
    Case("rebuildProjection", 'mutation { rebuildProjection(name: "notifications") { name } }'),
    Case("verifyLedger", "mutation { verifyLedger { eventsReplayed } }"),
    Case("eraseUserData", "mutation($u: ID!) { eraseUserData(userId: $u) }", U),
    Case("runScheduledJobs", "mutation { runScheduledJobs { job } }"),
    Case("advanceTestClock", "mutation($t: DateTime!) { advanceTestClock(to: $t) { job } }",
         lambda n: {"t": (datetime.fromisoformat(n.now) + timedelta(seconds=1)).isoformat()}),
    Case("setSandboxOutcome",
         "mutation($m: ID!) { setSandboxOutcome(paymentMethodId: $m, outcome: INSUFFICIENT_FUNDS) { id } }", MTH),
    Case("webhookEndpoints", "{ webhookEndpoints { id } }"),
    Case("webhookDeliveries", "{ webhookDeliveries { id } }"),
    Case("webhookDeliveriesPage", "{ webhookDeliveriesPage { nextCursor } }"),
    Case("createWebhookEndpoint", 'mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/hook", '
         "eventTypes: [PAYMENT_SUCCEEDED]}) { endpoint { id } } }"),
    Case("setWebhookEndpointEnabled", 'mutation { setWebhookEndpointEnabled(id: "we_missing", enabled: false) { id } }'),
    Case("deleteWebhookEndpoint", 'mutation { deleteWebhookEndpoint(id: "we_missing") }'),
    Case("rotateWebhookEndpointSecret", 'mutation { rotateWebhookEndpointSecret(id: "we_missing") { secret } }'),
    Case("redeliverWebhook", 'mutation { redeliverWebhook(deliveryId: "wd_missing") { id } }'),
    Case("resendNotification", 'mutation { resendNotification(notificationId: "n_missing") { id } }'),
]


def doc_rows() -> list[str]:
    """The rows of docs/permissions.md's table, rendered from schema/permissions.py."""
    def words(scopes: frozenset[Scope]) -> str:
        return ", ".join(s.value for s in Scope if s in scopes) or "–"

    rows = []
    for rule in permissions.RULES:
        if rule.access is not Access.SCOPED:
            who = "no token needed" if rule.access is Access.PUBLIC else "any valid token"
            rows.append(f"| `{rule.field}` | {rule.root.value} | {who} | – | – |")
            continue
        as_of = f" (asOf: also {words(rule.others_as_of)})" if rule.others_as_of else ""
        reach = {Target.NONE: "–", Target.USER: "userId", Target.OBJECT: "object id"}[rule.target]
        others = f"{words(rule.others)}{as_of}" if rule.target is not Target.NONE else "–"
        rows.append(f"| `{rule.field}` | {rule.root.value} | {words(rule.scopes)} | {reach} | {others} |")
    return rows


def test_the_docs_show_the_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "permissions.md").read_text()
    missing = [row for row in doc_rows() if row not in text]
    assert not missing, "docs/permissions.md lacks:\n" + "\n".join(missing)


def test_every_field_has_a_case() -> None:
    assert {case.field for case in CASES} == set(SPEC)
    assert {case.field for case in CASES if case.as_of} == {name for name, e in SPEC.items() if e.as_of}


# --- The server, shared by the module -----------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    sandbox = SandboxEngine()
    built = build(make_settings(module_database_url(request.param, tmp_path_factory)), sandbox=sandbox)
    with serve_asgi(built.http) as base_url, httpx.Client(timeout=60, verify=client_ssl_context()) as client:
        yield Api(url=base_url, built=built, client=client, sandbox=sandbox, closed=True)


def make_world(api: Api) -> Names:
    """A fresh user with a card, a paid (non-trial) basic subscription and 1,000 purchased points."""
    user = f"owner-{uuid.uuid4().hex[:10]}"
    method = api.add_card(user)
    sub = api.gql('mutation($m: ID) { subscribe(input: {planId: "basic", paymentMethodId: $m, skipTrial: true}) { id } }',
                  {"m": method}, user=user)["subscribe"]["id"]
    purchase = api.gql('mutation($m: ID!) { purchasePoints(input: {packageId: "starter", paymentMethodId: $m}) '
                       "{ payment { id } } }", {"m": method}, user=user)
    now = api.gql("{ clock { now } }")["clock"]["now"]
    return Names(user, method, sub, purchase["purchasePoints"]["payment"]["id"], now)


def missing_like(names: Names) -> Names:
    """Ids of the same shapes that name nothing at all."""
    nobody = f"nobody-{uuid.uuid4().hex[:10]}"
    return Names(nobody, method_id_of(nobody), str(uuid.uuid4()), str(uuid.uuid4()), names.now, names.unique)


def ledger_state(api: Api) -> tuple[int, int, int]:
    head = max((row["headPosition"] for row in api.built.services.projections()), default=0)
    return head, len(api.sandbox.charges()), len(api.sandbox.refunds())


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("errors") or []


def normalized(error: dict[str, Any], names: Names) -> tuple[str, str]:
    message = error["message"]
    for value in names.ids():
        message = message.replace(value, "<id>")
    return error["extensions"]["code"], message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matrix(shared_api: Api, case: Case) -> None:
    api = shared_api
    expect = SPEC[case.field]
    world = make_world(api)
    intruder = f"intruder-{uuid.uuid4().hex[:10]}"
    api.add_card(intruder)
    for who in Who:
        outcome = expected(expect, who, case.as_of)
        names = make_world(api) if outcome is Outcome.ALLOWED and case.document.startswith("mutation") else world
        names.now = api.gql("{ clock { now } }")["clock"]["now"]
        before = ledger_state(api)
        body = api.post(case.document, case.variables(names), token=token(who, names.user, intruder))
        errors = errors_of(body)
        codes = [e["extensions"]["code"] for e in errors]
        where = f"{case.id} by {who.value}: {body}"
        if outcome is Outcome.ALLOWED:
            assert not REFUSALS & set(codes), where
            if expect.target in ("object", "user"):
                assert "NOT_FOUND" not in codes, where
            continue
        assert len(errors) == 1, where
        if outcome in (Outcome.UNAUTHENTICATED, Outcome.FORBIDDEN):
            assert codes == [outcome.value], where
        else:
            assert codes[0] in ("NOT_FOUND", "FORBIDDEN"), where
        assert (body.get("data") or {}).get(case.field) is None, where
        assert ledger_state(api) == before, f"a refused call changed the ledger or the gateway: {where}"
        if who not in BAD_TOKENS:
            # Another user's id answers exactly as an id that names nothing.
            missing = missing_like(names)
            again = errors_of(api.post(case.document, case.variables(missing), token=token(who, names.user, intruder)))
            assert len(again) == 1 and normalized(again[0], missing) == normalized(errors[0], names), (
                f"{where} differs from a missing id: {again}")


def test_another_users_card_on_ones_own_subscription_answers_as_a_missing_card(shared_api: Api) -> None:
    api = shared_api
    victim = make_world(api)
    intruder = f"intruder-{uuid.uuid4().hex[:10]}"
    own = api.gql('mutation { subscribe(input: {planId: "free"}) { id } }', user=intruder)["subscribe"]["id"]
    document = "mutation($s: ID!, $m: ID!) { updateSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $m) { id } }"
    before = ledger_state(api)
    foreign = api.error(document, {"s": own, "m": victim.method}, user=intruder)
    missing = missing_like(victim)
    absent = api.error(document, {"s": own, "m": missing.method}, user=intruder)
    assert foreign.code == "NOT_FOUND"
    assert normalized(absent.errors[0], missing) == normalized(foreign.errors[0], victim)
    assert ledger_state(api) == before
