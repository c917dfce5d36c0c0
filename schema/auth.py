"""Bearer tokens (SPEC §1 Auth): HS256 JWTs with `sub`, `scope` and `exp`.
Only HS256 is accepted (a token signed with another algorithm, or `alg: none`,
is UNAUTHENTICATED); what each scope may call is `schema/permissions.py`.
Tokens of an identity provider, verified against its JWKS (RS256, ES256, ...), are
`schema/jwks.py`; both end in `caller_from`.

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


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, else UNAUTHENTICATED."""
    if not header:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def decode_token(header: str | None, secret: str) -> Caller:
    token = bearer_token(header)
    try:
        claims = _verified(token, secret)
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not valid") from None
    return caller_from(claims)


def caller_from(claims: dict, *, user_claim: str = "sub", scopes_claim: str = "scope", scope_prefix: str = "") -> Caller:
    """The caller of verified (possibly cached) claims, after checking `exp` and `nbf`
    against the clock again. `scopes_claim` holds a space-separated string (`scope`) or a
    list of words (`permissions`, `cognito:groups`); with `scope_prefix`, only words that
    start with it count, without it (`subledger:admin` is `admin`)."""
    now = time.time()
    if claims["exp"] <= now:  # as PyJWT: expired at the second `exp` names
        raise Unauthenticated("the token has expired")
    if "nbf" in claims and claims["nbf"] > now:
        raise Unauthenticated("the token is not valid")
    subject = claim(claims, user_claim)
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("the token has no subject")
    granted = claim(claims, scopes_claim)
    if isinstance(granted, str):
        words = granted.split()
    elif isinstance(granted, list):
        words = [word for word in granted if isinstance(word, str)]
    else:
        words = []
    if scope_prefix:
        words = [word.removeprefix(scope_prefix) for word in words if word.startswith(scope_prefix)]
    return Caller(subject, frozenset(words) & frozenset(SCOPES), claims.get("email"), claims.get("name"))


def claim(claims: dict, name: str) -> object:
    """The claim `name`; when there is none and `name` has dots, the path through nested
    objects (Keycloak's `realm_access.roles`). An exact name wins, so namespaced claims
    such as `https://example.com/roles` still work."""
    if name in claims or "." not in name:
        return claims.get(name)
    value: object = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(token: str, secret: str) -> dict:
    """The claims of a token whose signature and claims verified (errors are not kept)."""
    return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})


def mint_token(secret: str, user_id: str, scopes: str = "user", ttl_seconds: int = 86400, **extra: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "scope": scopes, "iat": now, "exp": now + ttl_seconds, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")
