"""One paging shape for every list of the served schema (issue 12; docs/api-guide.md, "Paging").

- every `…Connection` type has `items: [T!]!` and `nextCursor: String`, and every field
  answering one takes `first: Int` and `after: String`;
- every root query answering a plain list is either bounded by what it holds (listed
  here, and in the guide) or deprecated in favour of a `…Page` field that exists;
- every list read from a read model says in its description that it may lag.
"""
from __future__ import annotations

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_named_type

from schema.build import schema

#: Root lists answered whole: bounded by what they hold (docs/api-guide.md says why).
BOUNDED = {"paymentMethods", "projections", "cohorts", "webhookEndpoints", "subscriptionsByStatus"}
#: Root fields listed from read models (their own rows or their ids).
FROM_READ_MODELS = {
    "payments", "paymentsPage", "subscriptions", "subscriptionsPage", "notifications", "notificationsPage",
    "collections", "subscriptionsByStatus",
}


def unwrap(type_: object) -> object:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def test_every_connection_has_the_one_shape() -> None:
    gql = schema._schema
    connections = {name: t for name, t in gql.type_map.items() if name.endswith("Connection")}
    assert {"PointTransactionConnection", "PaymentConnection", "SubscriptionConnection", "NotificationConnection",
            "LedgerEventConnection"} <= set(connections)
    for name, type_ in connections.items():
        assert isinstance(type_, GraphQLObjectType), name
        items = type_.fields["items"].type
        assert isinstance(unwrap(items), GraphQLList) and isinstance(unwrap(items).of_type, GraphQLNonNull), name
        assert str(type_.fields["nextCursor"].type) == "String", name
    for type_name, type_ in gql.type_map.items():
        if not isinstance(type_, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in type_.fields.items():
            if get_named_type(field.type).name in connections:
                assert str(field.args["first"].type) == "Int", f"{type_name}.{field_name}"
                assert str(field.args["after"].type) == "String", f"{type_name}.{field_name}"


def test_every_root_list_pages_or_is_bounded() -> None:
    query = schema._schema.query_type
    for name, field in query.fields.items():
        if not isinstance(unwrap(field.type), GraphQLList) or name in BOUNDED:
            continue
        assert field.deprecation_reason, f"Query.{name} answers an unpaged list: add a …Page connection"
        assert f"{name}Page" in query.fields, name
        assert f"{name}Page" in field.deprecation_reason, name


def test_lists_from_read_models_say_they_may_lag() -> None:
    query = schema._schema.query_type
    for name in FROM_READ_MODELS:
        assert "projection delay" in (query.fields[name].description or ""), name
    wallet = schema._schema.type_map["Wallet"]
    assert "projection delay" in wallet.fields["transactions"].description
    export = schema._schema.type_map["UserDataExport"]
    for name in ("subscriptions", "payments", "notifications"):
        assert "may lag" in export.fields[name].description, name
