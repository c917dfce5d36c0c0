"""docs/api-reference.md: the served schema rendered as Markdown, from its own
descriptions (`subledger docs` writes it; a test fails when the committed page differs)."""
from __future__ import annotations

import re

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    print_ast,
)
from graphql.utilities import ast_from_value

BUILT_IN = {"String", "Int", "Float", "Boolean", "ID"}
ERRORS = re.compile(r" Errors: ([A-Z_, ]+)\.$")


def cell(text: str | None) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join((text or "").split()).replace("|", "\\|")


def type_link(type_: object) -> str:
    """`Type!` as code, linked to its section when it is one of ours."""
    name = get_named_type(type_).name  # type: ignore[arg-type]
    shown = f"`{type_}`"
    return shown if name in BUILT_IN else f"[{shown}](#{name.lower()})"


def default_of(argument: GraphQLArgument | GraphQLInputField) -> str:
    if argument.default_value is None or argument.default_value is ...:
        return ""
    if type(argument.default_value).__name__ == "UndefinedType":
        return ""
    node = ast_from_value(argument.default_value, argument.type)
    return f"`{print_ast(node)}`" if node is not None else ""


def operation_errors(schema: GraphQLSchema) -> dict[str, list[str]]:
    """code -> the root fields whose description lists it (`Query.wallet`, …)."""
    found: dict[str, list[str]] = {}
    for root in (schema.query_type, schema.mutation_type):
        for name, field in (root.fields.items() if root else ()):
            match = ERRORS.search(field.description or "")
            for code in match.group(1).split(", ") if match else ():
                found.setdefault(code, []).append(f"{root.name}.{name}")
    return found


def _arguments_table(field: GraphQLField) -> list[str]:
    if not field.args:
        return []
    lines = ["", "| argument | type | default | description |", "|---|---|---|---|"]
    for name, argument in field.args.items():
        lines.append(f"| `{name}` | {type_link(argument.type)} | {default_of(argument)} | {cell(argument.description)} |")
    return lines


def _operations(root: GraphQLObjectType | None, title: str) -> list[str]:
    if root is None:
        return []
    lines = [f"## {title}", "", cell(root.description), ""]
    for name, field in root.fields.items():
        lines += [f"### {root.name}.{name}", "", f"Returns {type_link(field.type)}.", "", cell(field.description)]
        if field.deprecation_reason:
            lines += ["", f"**Deprecated.** {cell(field.deprecation_reason)}"]
        lines += _arguments_table(field)
        lines.append("")
    return lines


def _signature(name: str, field: GraphQLField) -> str:
    if not field.args:
        return f"`{name}`"
    return f"`{name}({', '.join(field.args)})`"


def _type_section(type_: GraphQLNamedType) -> list[str]:
    lines = [f"### {type_.name}", "", cell(type_.description), ""]
    if isinstance(type_, GraphQLObjectType):
        lines += ["| field | type | description |", "|---|---|---|"]
        for name, field in type_.fields.items():
            text = cell(field.description)
            if field.deprecation_reason:
                text += f" **Deprecated.** {cell(field.deprecation_reason)}"
            for arg_name, argument in field.args.items():
                default = default_of(argument)
                text += f"<br>`{arg_name}`: {type_link(argument.type)}{' = ' + default if default else ''}. "
                text += cell(argument.description)
            lines.append(f"| {_signature(name, field)} | {type_link(field.type)} | {text} |")
    elif isinstance(type_, GraphQLInputObjectType):
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, input_field in type_.fields.items():
            lines.append(
                f"| `{name}` | {type_link(input_field.type)} | {default_of(input_field)} | {cell(input_field.description)} |"
            )
    elif isinstance(type_, GraphQLEnumType):
        lines += ["| value | description |", "|---|---|"]
        for name, value in type_.values.items():
            lines.append(f"| `{name}` | {cell(value.description)} |")
    lines.append("")
    return lines


def api_reference(schema: GraphQLSchema) -> str:
    roots = {t.name for t in (schema.query_type, schema.mutation_type) if t is not None}
    named = sorted(
        (t for name, t in schema.type_map.items() if not name.startswith("__") and name not in BUILT_IN | roots),
        key=lambda t: t.name,
    )
    kinds = (
        ("Object types", GraphQLObjectType),
        ("Input types", GraphQLInputObjectType),
        ("Enums", GraphQLEnumType),
        ("Scalars", GraphQLScalarType),
    )
    lines = [
        "# API reference",
        "",
        "<!-- Generated by `subledger docs` from the served schema's own descriptions: do not edit by hand. -->",
        "",
        "Every operation, type, field, argument and enum value of the GraphQL schema served at `/graphql`, with",
        "its description. Each operation's description starts with the scopes that may call it",
        "([permissions](permissions.md)) and ends with the error codes it may answer ([errors](errors.md)).",
        "How to use them together: [the API guide](api-guide.md). The same schema as SDL: `subledger export-schema`.",
        "",
    ]
    lines += _operations(schema.query_type, "Queries")
    lines += _operations(schema.mutation_type, "Mutations")
    for title, kind in kinds:
        lines += [f"## {title}", ""]
        for type_ in named:
            if isinstance(type_, kind):
                lines += _type_section(type_)
    return "\n".join(lines).rstrip() + "\n"
