"""The one mapping from failures to the contract's codes (schema/errors.py)."""
from __future__ import annotations

from graphql import GraphQLError

from domain.errors import InsufficientPoints, PaymentFailed
from schema.errors import format_error


def test_domain_errors_keep_their_code_and_extensions() -> None:
    error = GraphQLError("x", path=["spendPoints"], original_error=InsufficientPoints(available=5, required=9))
    formatted = format_error(error)
    assert formatted["extensions"] == {"code": "INSUFFICIENT_POINTS", "available": 5, "required": 9}
    failed = format_error(GraphQLError("x", path=["p"], original_error=PaymentFailed("CARD_SUSPENDED", "pay-1")))
    assert failed["extensions"] == {"code": "PAYMENT_FAILED", "declineCode": "CARD_SUSPENDED", "paymentId": "pay-1"}


def test_unexpected_errors_are_masked_as_internal() -> None:
    secret = RuntimeError("relation ledger_events does not exist at /srv/app.py line 3")
    formatted = format_error(GraphQLError(str(secret), path=["wallet"], original_error=secret))
    assert formatted["message"] == "internal error"
    assert formatted["extensions"] == {"code": "INTERNAL"}
    assert "ledger_events" not in str(formatted)


def test_errors_before_execution_are_the_clients() -> None:
    formatted = format_error(GraphQLError("Cannot query field 'x' on type 'Query'."))
    assert formatted["extensions"] == {"code": "BAD_USER_INPUT"}
    coercion = format_error(GraphQLError("Variable '$t' got invalid value", original_error=ValueError("no offset")))
    assert coercion["extensions"] == {"code": "BAD_USER_INPUT"}
