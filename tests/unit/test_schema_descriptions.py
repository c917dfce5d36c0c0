"""Every type, field, argument and enum value of the served schema has a description,
every operation names its error codes, and the error table covers every code the code raises."""
from __future__ import annotations

import inspect

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType, GraphQLSchema

import subledger.http_parts
from domain import errors as domain_errors
from domain.errors import DomainError
from schema.build import schema
from schema.error_codes import BY_CODE, TABLE
from schema.permissions import Access, Root, rule
from schema.rate_limit import RateLimited
from schema.reference import ERRORS

BUILT_IN = {"String", "Int", "Float", "Boolean", "ID"}
#: SPEC §1 "Error codes", plus RATE_LIMITED (docs/limits.md).
CONTRACT_CODES = {
    "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT", "INSUFFICIENT_POINTS",
    "USAGE_LIMIT_EXCEEDED", "PAYMENT_FAILED", "ALREADY_CLAIMED", "IDEMPOTENCY_KEY_REUSED", "PROMO_CODE_INVALID",
    "SANDBOX_ONLY", "INTERNAL", "RATE_LIMITED",
}


def served() -> GraphQLSchema:
    # The very schema object the composition root serves (untraced).
    assert subledger.http_parts.http_tracing(None)[0] is schema
    return schema._schema


def undescribed(gql: GraphQLSchema) -> list[str]:
    missing = []
    for name, type_ in sorted(gql.type_map.items()):
        if name.startswith("__") or name in BUILT_IN:
            continue
        if not (type_.description or "").strip():
            missing.append(f"type {name}")
        if isinstance(type_, (GraphQLObjectType, GraphQLInputObjectType)):
            for field_name, field in type_.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"field {name}.{field_name}")
                for arg_name, argument in getattr(field, "args", {}).items():
                    if not (argument.description or "").strip():
                        missing.append(f"argument {name}.{field_name}({arg_name})")
        if isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                if not (value.description or "").strip():
                    missing.append(f"enum value {name}.{value_name}")
    return missing


def test_everything_served_has_a_description() -> None:
    missing = undescribed(served())
    assert not missing, f"{len(missing)} without a description:\n" + "\n".join(missing)


def test_the_walk_finds_a_missing_description() -> None:
    # The check itself can fail: a schema with one bare field is reported, by name.
    import strawberry

    @strawberry.type(description="described")
    class Query:
        bare: int

    assert undescribed(strawberry.Schema(query=Query)._schema) == ["field Query.bare"]


def test_every_operation_states_its_scope_and_error_codes() -> None:
    gql = served()
    problems = []
    for root, type_ in ((Root.QUERY, gql.query_type), (Root.MUTATION, gql.mutation_type)):
        for name, field in type_.fields.items():
            found = rule(root, name)
            description = field.description or ""
            if not description.startswith(found.describe()):
                problems.append(f"{root.value}.{name}: does not start with its scope sentence")
            match = ERRORS.search(description)
            if found.access is not Access.PUBLIC and not match:
                problems.append(f"{root.value}.{name}: no 'Errors: …' list")
            for code in match.group(1).split(", ") if match else ():
                if code not in BY_CODE:
                    problems.append(f"{root.value}.{name}: {code} is not in the error table")
    assert not problems, "\n".join(problems)


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_the_error_table_covers_every_code_raised() -> None:
    codes = {entry.code for entry in TABLE}
    assert codes == CONTRACT_CODES
    raised = {cls.code: cls for cls in _subclasses(DomainError) if not cls.__module__.startswith("tests")}
    missing = {code: cls.__qualname__ for code, cls in raised.items() if code not in codes}
    assert not missing, f"error classes whose code is not in schema/error_codes.py: {missing}"
    for entry in TABLE:
        for cls in entry.raised_by:
            assert cls.code == entry.code, f"{cls.__qualname__} carries {cls.code}, listed under {entry.code}"
    listed = {cls for entry in TABLE for cls in entry.raised_by}
    unlisted = [cls.__qualname__ for cls in _subclasses(DomainError) if cls not in listed
                and inspect.getmodule(cls) in (domain_errors,)]
    assert not unlisted, f"domain error classes the table does not name: {unlisted}"


def test_the_table_names_the_extensions_the_errors_carry() -> None:
    samples = [
        domain_errors.InsufficientPoints(available=120, required=500),
        domain_errors.UsageLimitExceeded("tarot_readings", limit=5, used=5),
        domain_errors.PaymentFailed("INSUFFICIENT_FUNDS", "pay-1"),
        RateLimited(3),
    ]
    for error in samples:
        documented = {extension.name for extension in BY_CODE[error.code].extensions}
        assert set(error.extensions) == documented, error.code
