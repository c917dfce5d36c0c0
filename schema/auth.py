"""Bearer tokens (SPEC §1 Auth): HS256 JWTs with `sub`, `scope` and `exp`.
Only HS256 is accepted (a token signed with another algorithm, or `alg: none`,
is UNAUTHENTICATED); what each scope may call is `schema/permissions.py`.

Expiry is checked against the wall clock, never the test clock.

A token's signature is verified once: the claims of the last few thousand valid
tokens are kept (a front end sends the same token with every request), and each
use checks their expiry and not-before against the clock again. Only tokens that
verified are kept; the key is the token together with the secret.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from enum import StrEnum

import jwt

from domain.errors import DomainError

#: Valid tokens whose claims are kept, so a repeated token is not verified again.
VERIFIED_TOKENS = 4096


class Scope(StrEnum):
    """The scopes a token's `scope` claim may name; any other word is ignored."""

    USER = "user"
    ADMIN = "admin"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    CRON = "cron"
    SYSTEM = "system"


SCOPES = tuple(scope.value for scope in Scope)


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


@dataclass(frozen=True)
class Caller:
    user_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    name: str | None = None

    def has(self, *scopes: str) -> bool:
        """True when the token holds one of `scopes`. Who may call what is decided
        in one place, `schema/permissions.py`, never by resolvers testing scopes."""
        return bool(self.scopes.intersection(scopes))


def decode_token(header: str | None, secret: str) -> Caller:
    if not header:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        claims = _verified(token.strip(), secret)
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not valid") from None
    now = time.time()
    if claims["exp"] <= now:  # as PyJWT: expired at the second `exp` names
        raise Unauthenticated("the token has expired")
    if "nbf" in claims and claims["nbf"] > now:
        raise Unauthenticated("the token is not valid")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("the token has no subject")
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    return Caller(subject, scopes & frozenset(SCOPES), claims.get("email"), claims.get("name"))


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(token: str, secret: str) -> dict:
    """The claims of a token whose signature and claims verified (errors are not kept)."""
    return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})


def mint_token(secret: str, user_id: str, scopes: str = "user", ttl_seconds: int = 86400, **extra: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "scope": scopes, "iat": now, "exp": now + ttl_seconds, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")
