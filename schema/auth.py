"""Bearer tokens (SPEC §1 Auth): HS256 JWTs with `sub`, `scope` and `exp`.

Expiry is checked against the wall clock, never the test clock.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

from domain.errors import DomainError, Forbidden

SCOPES = ("user", "admin", "analyst", "auditor", "cron", "system")


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


@dataclass(frozen=True)
class Caller:
    user_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    name: str | None = None

    def has(self, *scopes: str) -> bool:
        return bool(self.scopes.intersection(scopes))

    def require(self, *scopes: str) -> None:
        if not self.has(*scopes):
            raise Forbidden(f"needs one of the scopes: {', '.join(scopes)}")

    def user_for(self, user_id: str | None, *other_scopes: str) -> str:
        """The user an operation acts on: the caller, or another user when the
        caller holds `admin` or one of `other_scopes` (read-only roles)."""
        if user_id is None or user_id == self.user_id:
            return self.user_id
        if not self.has("admin", *other_scopes):
            raise Forbidden("not allowed to act for another user")
        return user_id


def decode_token(header: str | None, secret: str) -> Caller:
    if not header:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not valid") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("the token has no subject")
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    return Caller(subject, scopes & frozenset(SCOPES), claims.get("email"), claims.get("name"))


def mint_token(secret: str, user_id: str, scopes: str = "user", ttl_seconds: int = 86400, **extra: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "scope": scopes, "iat": now, "exp": now + ttl_seconds, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")
