"""Descriptions shared by many arguments and input fields, written once."""
from __future__ import annotations

from typing import Annotated

import strawberry

from schema.scalars import DateTime

IDEMPOTENCY_KEY = (
    "Optional. Repeating the call with the same key and the same input answers the first result and changes "
    "nothing; the same key with a different input answers IDEMPOTENCY_KEY_REUSED. Keys are per caller and "
    "operation."
)

USER_ID = "The user; default: the caller. Naming another user needs a scope the operation's description lists for another user's."

AS_OF = "Read the state as it stood at this time, rebuilt from the ledger's events; default: now."

#: A `userId` argument that defaults to the caller.
UserId = Annotated[strawberry.ID | None, strawberry.argument(description=USER_ID)]
#: An `asOf` argument.
AsOf = Annotated[DateTime | None, strawberry.argument(description=AS_OF)]


def idempotency_field() -> str | None:
    """An input's optional `idempotencyKey` field."""
    return strawberry.field(default=None, description=IDEMPOTENCY_KEY)

#: A required `userId` (no default).
NAMED_USER = "The user. Naming another user than the caller needs a scope the operation's description lists for another user's."
