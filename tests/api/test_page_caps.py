"""Every `first:` of the served schema is capped (issue 10, abuse): above the cap or
below 1 answers BAD_USER_INPUT naming the cap; the cap itself and no `first` work."""
from __future__ import annotations

import pytest
from graphql import GraphQLObjectType

from schema import pages
from schema.build import schema as served_schema
from tests.api.conftest import Api

QUERIES = {
    "Query.events": ("query($n: Int) { events(first: $n) { position } }", {"user": "audit-1", "scope": "auditor"}),
    "Query.payments": ("query($n: Int) { payments(first: $n) { id } }", {"user": "cap-user"}),
    "Query.notifications": ("query($n: Int) { notifications(first: $n) { id } }", {"user": "cap-user"}),
    "Wallet.transactions": ("query($n: Int) { wallet { transactions(first: $n) { totalCount } } }", {"user": "cap-user"}),
    "Query.webhookDeliveries": ("query($n: Int) { webhookDeliveries(first: $n) { id } }", {"user": "ops", "scope": "admin"}),
    "Query.webhookDeliveriesPage": ("query($n: Int) { webhookDeliveriesPage(first: $n) { nextCursor } }",
                                    {"user": "ops", "scope": "admin"}),
    "Query.eventsPage": ("query($n: Int) { eventsPage(first: $n) { nextCursor } }", {"user": "audit-1", "scope": "auditor"}),
    "Query.paymentsPage": ("query($n: Int) { paymentsPage(first: $n) { nextCursor } }", {"user": "cap-user"}),
    "Query.notificationsPage": ("query($n: Int) { notificationsPage(first: $n) { nextCursor } }", {"user": "cap-user"}),
    "Query.subscriptionsPage": ("query($n: Int) { subscriptionsPage(first: $n) { nextCursor } }", {"user": "cap-user"}),
    "Query.collections": ("query($n: Int) { collections(first: $n) { nextCursor } }", {"user": "ops", "scope": "admin"}),
}


def fields_taking_first() -> set[str]:
    found = set()
    for name, kind in served_schema._schema.type_map.items():
        if isinstance(kind, GraphQLObjectType) and not name.startswith("__"):
            found |= {f"{name}.{field}" for field, definition in kind.fields.items() if "first" in definition.args}
    return found


def test_every_first_argument_is_capped() -> None:
    assert fields_taking_first() == set(pages.CAPPED) == set(QUERIES)
    # The caps, as docs/permissions.md states them.
    assert {path: size.maximum for path, size in pages.CAPPED.items()} == {
        "Query.events": 1000, "Query.payments": 200, "Query.notifications": 200, "Wallet.transactions": 200,
        "Query.webhookDeliveries": 200, "Query.webhookDeliveriesPage": 200,
        "Query.eventsPage": 1000, "Query.paymentsPage": 200, "Query.notificationsPage": 200,
        "Query.subscriptionsPage": 200, "Query.collections": 200,
    }
    for path, size in pages.CAPPED.items():
        kind, field = path.split(".")
        definition = served_schema._schema.type_map[kind].fields[field]
        assert definition.args["first"].default_value == size.default
        assert f"1 to {size.maximum}" in definition.description


@pytest.mark.parametrize("path", sorted(QUERIES))
def test_first_beyond_the_cap_or_below_one_is_refused(api: Api, path: str) -> None:
    document, who = QUERIES[path]
    cap = pages.CAPPED[path].maximum
    api.gql(document, {"n": cap}, **who)
    api.gql(document, {}, **who)
    for bad in (cap + 1, 10**6, 0, -1):
        error = api.error(document, {"n": bad}, **who)
        assert error.code == "BAD_USER_INPUT", (bad, error.errors)
        assert f"between 1 and {cap}" in error.errors[0]["message"], error.errors


def test_first_limits_the_page(api: Api) -> None:
    user = "cap-pager"
    for _ in range(3):
        api.gql('mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 5, reason: "r"}) { amount } }',
                {"u": user}, user="ops", scope="admin")
    api.settle_read_models()
    page = api.gql("{ wallet { transactions(first: 2) { totalCount items { amount } } } }", user=user)["wallet"]
    assert page["transactions"]["totalCount"] == 3 and len(page["transactions"]["items"]) == 2
    events = api.gql("query($u: ID) { events(userId: $u, first: 2) { position } }", {"u": user}, user="a", scope="auditor")
    assert len(events["events"]) == 2
