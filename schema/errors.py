"""The one place where failures become the contract's error codes.

Domain errors carry their code; errors raised before execution (syntax,
validation, variable coercion: no path) are the client's: BAD_USER_INPUT;
anything else is a bug: logged with its traceback, answered as INTERNAL
with no detail.
"""
from __future__ import annotations

from typing import Any

import structlog
from graphql import GraphQLError

from domain.errors import DomainError

log = structlog.get_logger("subledger.errors")


def error_code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code
    if original is None or error.path is None:
        return "BAD_USER_INPUT"
    return "INTERNAL"


def format_error(error: GraphQLError) -> dict[str, Any]:
    code = error_code(error)
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        formatted["path"] = list(error.path)
    extensions: dict[str, Any] = {"code": code}
    if isinstance(original, DomainError):
        formatted["message"] = original.message
        extensions.update(original.extensions)
    elif code == "INTERNAL":
        formatted["message"] = "internal error"
    formatted["extensions"] = extensions
    return formatted


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if error_code(error) == "INTERNAL":
            log.error(
                "unexpected_error",
                path=".".join(str(p) for p in error.path or []),
                exc_info=error.original_error,
            )


def request_error(message: str, code: str = "BAD_USER_INPUT") -> dict[str, Any]:
    """A response body for a request that never reached GraphQL execution (bad JSON, too large)."""
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
