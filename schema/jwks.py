"""Bearer tokens of an identity provider (Auth0, Keycloak, Cognito, ...): RS256/ES256
JWTs verified against the provider's JWKS (`SUBLEDGER_JWKS_URL`, docs/identity-providers.md).

Which key verifies a token is decided by the key, never by the token alone:
- a token whose header names an asymmetric algorithm of `SUBLEDGER_JWT_ALGORITHMS` is
  verified only with the JWKS key its `kid` names, and only when that key's own algorithm
  is the header's (PyJWT checks a PyJWK's bound algorithm), so an `oct` key slipped into
  the set, or an RSA key offered for ES256, verifies nothing;
- an HS256 token is verified only with `SUBLEDGER_JWT_SECRET`, and only when HS256 is
  listed in `SUBLEDGER_JWT_ALGORITHMS` (it is not by default). An HS256 token "signed" with
  a provider's public key (algorithm confusion) is therefore checked against the secret
  and refused; `alg: none` and any other algorithm are refused before any key is looked at.

The key set is fetched with PyJWT's `PyJWKClient` and kept for `cache_seconds`. Fetching
happens only in `prepare`, in a worker thread, so the event loop never waits on the
provider; `caller` (called synchronously by resolvers) reads the kept set and does no I/O.
A token whose `kid` is not in the set triggers one refetch, at most one per
`cooldown_seconds`, so a flood of made-up kids cannot flood the provider.

When the JWKS server is down: the keys fetched last keep verifying tokens, even after
`cache_seconds` (a failed refresh is logged as `jwks_fetch_failed` and retried at most once
per cooldown, at least a second apart, so requests do not each wait on a dead server); a
token whose `kid` was never fetched is refused as UNAUTHENTICATED, never a server error.
When the server answers with a new set, keys it no longer lists stop verifying at once.

As for HS256 tokens (`schema/auth.py`), a signature is verified once: the claims of valid
tokens are kept (`_verified`, keyed by the token and the key object), and every use checks
`exp` and `nbf` against the clock again (`caller_from`).
"""
from __future__ import annotations

import asyncio
import functools
import threading
import time
from dataclasses import dataclass

import jwt
import structlog
from jwt import PyJWK, PyJWKClient

from schema.auth import VERIFIED_TOKENS, Caller, Unauthenticated, bearer_token, caller_from, decode_token
from schema.jwt_algorithms import ASYMMETRIC

log = structlog.get_logger("subledger.auth")

#: How long one fetch of the key set may take before it counts as failed.
FETCH_TIMEOUT_SECONDS = 5.0
#: Shortest wait before a failed fetch is tried again, whatever the cooldown.
RETRY_AFTER_FAILURE_SECONDS = 1.0


@dataclass(frozen=True)
class JwksPolicy:
    """What a provider's token must be, from the SUBLEDGER_JWKS_* / SUBLEDGER_JWT_* settings."""

    url: str
    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...]  # as configured; HS256 among them accepts the shared secret's tokens too
    #: The claim that names the audience: `aud`, or e.g. Cognito access tokens' `client_id`.
    audience_claim: str = "aud"
    scopes_claim: str = "scope"
    user_claim: str = "sub"
    scope_prefix: str = ""
    cache_seconds: float = 300.0
    cooldown_seconds: float = 30.0

    @property
    def asymmetric(self) -> tuple[str, ...]:
        return tuple(alg for alg in self.algorithms if alg in ASYMMETRIC)


class ProviderKeys:
    """The provider's signing keys by `kid`, fetched with PyJWKClient (which keeps the set
    for `cache_seconds`); the last set fetched is kept past that while the server is down."""

    def __init__(self, url: str, *, cache_seconds: float, cooldown_seconds: float) -> None:
        # The cooldown is ours (`_due`): PyJWKClient's own applies only to get_signing_key.
        self.client = PyJWKClient(url, lifespan=cache_seconds, timeout=FETCH_TIMEOUT_SECONDS, cooldown_duration=0)
        assert self.client.jwk_set_cache is not None  # cache_jwk_set defaults to True
        self.cache = self.client.jwk_set_cache
        self.cooldown = cooldown_seconds
        self._lock = threading.Lock()
        self._fetched_at: float | None = None  # monotonic time of the last attempt that answered
        self._failed_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None

    def known(self, kid: str) -> PyJWK | None:
        """The key `kid` of the last set fetched, however old; no I/O."""
        held = self.cache.jwk_set_with_timestamp
        return _signing_key(held.get_jwk_set().keys, kid) if held else None

    async def prepare(self, kid: str) -> None:
        """Fetch the set, in a worker thread, when it is older than the cache's lifespan or
        lacks `kid` and the cooldown allows; otherwise return at once. Requests that arrive
        during a fetch wait for that one instead of taking threads of their own."""
        if not self._due(kid, time.monotonic()):
            return
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._fetch, kid))
        await asyncio.shield(self._inflight)

    def _due(self, kid: str, now: float) -> bool:
        if self._failed_at is not None and now - self._failed_at < max(self.cooldown, RETRY_AFTER_FAILURE_SECONDS):
            return False
        if self.cache.get() is None:  # never fetched, or older than cache_seconds
            return True
        if self.known(kid) is not None:
            return False
        return self._fetched_at is None or now - self._fetched_at >= self.cooldown

    def _fetch(self, kid: str) -> None:
        with self._lock:  # concurrent requests for one new kid fetch once
            if not self._due(kid, time.monotonic()):
                return
            try:
                self.client.get_signing_keys(refresh=True)
            except jwt.PyJWTError as error:  # unreachable, not JSON, no usable key
                self._failed_at = time.monotonic()
                kept = self.cache.jwk_set_with_timestamp is not None
                log.warning("jwks_fetch_failed", error=type(error).__name__, keys_kept=kept)
            else:
                self._failed_at = None
                self._fetched_at = time.monotonic()


def _signing_key(keys: list[PyJWK], kid: str) -> PyJWK | None:
    for key in keys:
        if key.key_id == kid and key.public_key_use in ("sig", None):
            return key
    return None


class JwksTokens:
    """Verifies bearer tokens of one identity provider (and, when HS256 is configured
    alongside, the shared secret's own tokens) into a `Caller`."""

    def __init__(self, policy: JwksPolicy, secret: str) -> None:
        self.policy = policy
        self.secret = secret
        self.keys = ProviderKeys(
            policy.url, cache_seconds=policy.cache_seconds, cooldown_seconds=policy.cooldown_seconds
        )

    async def prepare(self, header: str | None) -> None:
        """Make sure the key the token names has been fetched (no-op for a bad or HS256 token:
        `caller` refuses those)."""
        try:
            fields = jwt.get_unverified_header(bearer_token(header))
        except (Unauthenticated, jwt.PyJWTError):
            return
        kid = fields.get("kid")
        if fields.get("alg") in self.policy.asymmetric and isinstance(kid, str) and kid:
            await self.keys.prepare(kid)

    def caller(self, header: str | None) -> Caller:
        """The token's caller, or UNAUTHENTICATED; uses only keys already fetched."""
        token = bearer_token(header)
        try:
            fields = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid") from None
        algorithm = fields.get("alg")
        if algorithm == "HS256" and "HS256" in self.policy.algorithms:
            return decode_token(header, self.secret)
        if algorithm not in self.policy.asymmetric:
            raise Unauthenticated("the token is not valid")
        kid = fields.get("kid")
        key = self.keys.known(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("the token's signing key is not one of the identity provider's")
        policy = self.policy
        try:
            claims = _verified(token, key, policy.asymmetric, policy.issuer, policy.audience, policy.audience_claim)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid") from None
        return caller_from(
            claims, user_claim=policy.user_claim, scopes_claim=policy.scopes_claim, scope_prefix=policy.scope_prefix
        )


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(
    token: str, key: PyJWK, algorithms: tuple[str, ...], issuer: str, audience: tuple[str, ...], audience_claim: str
) -> dict:
    """The claims of a token whose signature, issuer and audience verified. Keyed by the
    PyJWK object itself: a refetched set makes new objects, so a key the provider dropped
    does not keep its tokens alive here (and `caller` no longer finds it anyway)."""
    if audience_claim == "aud":
        return jwt.decode(
            token, key, algorithms=list(algorithms), issuer=issuer, audience=list(audience),
            options={"require": ["exp", "iss", "aud"]},
        )
    claims = jwt.decode(
        token, key, algorithms=list(algorithms), issuer=issuer,
        options={"require": ["exp", "iss", audience_claim], "verify_aud": False},
    )
    named = claims[audience_claim]
    names = [named] if isinstance(named, str) else named if isinstance(named, list) else []
    if not set(audience).intersection(name for name in names if isinstance(name, str)):
        raise jwt.InvalidAudienceError(f"the token's {audience_claim} is not this API's")
    return claims
