"""What a resolver can reach: the caller and the application's services.

`Services` (`schema/services.py`) is the schema's declaration of what it needs;
`subledger/core.py` and the composition root (`subledger/app.py`) build one from settings.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

from strawberry.types import Info as StrawberryInfo

from schema.auth import Caller, decode_token
from schema.services import Services

__all__ = ["Context", "Info", "Services"]


class Context(dict):
    """Strawberry's context: a dict (so strawberry's own keys still work) with the
    caller decoded lazily, because `catalog` and `clock` need no token."""

    def __init__(self, services: Services, authorization: str | None, **rest: Any) -> None:
        super().__init__(rest)
        self.services = services
        self.authorization = authorization

    @cached_property
    def caller(self) -> Caller:
        if self.services.tokens is not None:
            return self.services.tokens.caller(self.authorization)
        return decode_token(self.authorization, self.services.jwt_secret)


Info = StrawberryInfo[Context, None]
