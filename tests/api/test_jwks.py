"""Tokens of an identity provider verified against its JWKS (schema/jwks.py), over HTTP on
both databases: the provider's key set is served by a real HTTP server with RSA and EC keys
made here; rotation, refusals (each UNAUTHENTICATED and changing nothing), the scopes and
user-id claim mappings, and a key server that is slow or down."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schema.auth import mint_token
from tests.api.conftest import JWT_SECRET, Api
from tests.servers import serve_asgi

ISSUER = "https://tenant.example.auth0.com/"
AUDIENCE = "https://billing.example.com/api"
WALLET = "query($u: ID) { wallet(userId: $u) { totalBalance } }"
ADJUST = 'mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 500, reason: "goodwill"}) { amount } }'


class SigningKey:
    """A provider's key pair: the private half signs tokens, the public half goes in the JWKS."""

    def __init__(self, kind: str) -> None:
        self.kid = f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = "RS256"
            self.jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = "ES256"
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk.update(kid=self.kid, use="sig", alg=self.algorithm)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, user: str, scope: Any = "openid profile user", *, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": now, "exp": now + 300, **claims}
        body = {name: value for name, value in body.items() if value is not None}  # aud=None: no aud
        if scope is not None:
            body["scope"] = scope
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid})


RSA_KEY = SigningKey("rsa")
EC_KEY = SigningKey("ec")


class KeyServer:
    """The provider's `/.well-known/jwks.json` as a real HTTP server; counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.delay = 0.0

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.jwk for key in keys]

    async def jwks(self, _: Request) -> JSONResponse:
        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return JSONResponse({"keys": self.keys})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/.well-known/jwks.json", self.jwks)])


@pytest.fixture(scope="module")
def key_server() -> Iterator[tuple[str, KeyServer]]:
    server = KeyServer()
    with serve_asgi(server.app(), lifespan="off") as url:
        yield f"{url}/.well-known/jwks.json", server


@pytest.fixture
def provider(api_factory: Any, key_server: tuple[str, KeyServer]) -> Any:
    """Start the service trusting the key server (which publishes both keys unless told otherwise)."""
    url, server = key_server
    server.publish(RSA_KEY, EC_KEY)
    server.fetches = 0
    server.delay = 0.0

    def start(**overrides: Any) -> Api:
        trust = {"jwks_url": url, "jwt_issuer": ISSUER, "jwt_audience": f"{AUDIENCE}, https://other.example"}
        return api_factory(**{**trust, **overrides})

    start.server = server
    return start


def code(api: Api, query: str, token: str, variables: dict[str, Any] | None = None) -> str:
    body = api.post(query, variables, token)
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


def head(api: Api) -> int:
    return api.built.ledger.recorder.max_notification_id() or 0


def test_rs256_and_es256_tokens_are_accepted_with_their_scopes(provider: Any, user: str) -> None:
    api = provider()
    assert api.gql("{ me }", token=RSA_KEY.token(user))["me"] == user
    assert api.gql("{ me }", token=EC_KEY.token(user))["me"] == user
    admin = EC_KEY.token("ops-1", "openid admin")
    assert api.gql(ADJUST, {"u": user}, token=admin)["adjustPoints"]["amount"] == 500
    assert api.gql(WALLET, token=RSA_KEY.token(user))["wallet"]["totalBalance"] == 500

    # A valid provider token whose scopes lack admin: FORBIDDEN, nothing appended.
    before = head(api)
    assert code(api, ADJUST, RSA_KEY.token("ops-2", "openid profile user analyst"), {"u": user}) == "FORBIDDEN"
    assert code(api, ADJUST, RSA_KEY.token("ops-3", None), {"u": user}) == "FORBIDDEN"
    # Today's HS256 tokens are not accepted once a JWKS URL is set (SUBLEDGER_JWT_ALGORITHMS has no HS256).
    assert code(api, ADJUST, mint_token(JWT_SECRET, "ops-4", "admin"), {"u": user}) == "UNAUTHENTICATED"
    assert head(api) == before
    assert api.gql(WALLET, token=EC_KEY.token(user))["wallet"]["totalBalance"] == 500


def hs256_signed_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token whose HMAC key is `secret` (PyJWT itself refuses a PEM public key there)."""
    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case, on purpose
def test_bad_tokens_are_unauthenticated_and_change_nothing(provider: Any, user: str) -> None:
    # HS256 alongside the provider: the secret's own tokens still work, and nothing else does.
    api = provider(jwt_algorithms="RS256,ES256,HS256")
    assert api.gql(ADJUST, {"u": user}, token=mint_token(JWT_SECRET, "ops", "admin"))["adjustPoints"]["amount"] == 500
    before = head(api)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "scope": "admin", "iat": now, "exp": now + 300}
    impostor = SigningKey("rsa")
    refused = {
        "wrong issuer": RSA_KEY.token("mallory", "admin", iss="https://evil.example.com/"),
        "wrong audience": RSA_KEY.token("mallory", "admin", aud="https://another-api.example.com"),
        "no audience": jwt.encode({k: v for k, v in claims.items() if k != "aud"}, RSA_KEY.private,
                                  algorithm="RS256", headers={"kid": RSA_KEY.kid}),
        "expired": EC_KEY.token("mallory", "admin", exp=now - 5),
        "not yet valid": EC_KEY.token("mallory", "admin", nbf=now + 600),
        "unknown kid": RSA_KEY.token("mallory", "admin", kid="never-published"),
        "no kid": jwt.encode(claims, RSA_KEY.private, algorithm="RS256"),
        "signed by another key under a known kid": impostor.token("mallory", "admin", kid=RSA_KEY.kid),
        "RS256 header on the EC key's kid": jwt.encode(claims, RSA_KEY.private, algorithm="RS256",
                                                       headers={"kid": EC_KEY.kid}),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": RSA_KEY.kid}),
        "HS256 signed with the RSA public key": hs256_signed_with(RSA_KEY.public_pem(), claims, RSA_KEY.kid),
        "HS256 signed with the RSA JWK": hs256_signed_with(json.dumps(RSA_KEY.jwk).encode(), claims, RSA_KEY.kid),
        "HS256 signed with the EC public key": hs256_signed_with(EC_KEY.public_pem(), claims, EC_KEY.kid),
        "HS512 with the secret": jwt.encode(claims, JWT_SECRET, algorithm="HS512"),
        "not a JWT": "not-a-jwt",
    }
    for case, token in refused.items():
        body = api.post(ADJUST, {"u": user}, token)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (case, body)
        assert "Traceback" not in json.dumps(body)
    assert head(api) == before
    assert api.gql(WALLET, token=RSA_KEY.token(user))["wallet"]["totalBalance"] == 500
    assert "expired" in api.post("{ me }", None, refused["expired"])["errors"][0]["message"]


def test_a_key_added_after_startup_is_picked_up_by_one_rate_limited_refetch(provider: Any, user: str) -> None:
    cooldown = 3.0
    api = provider(jwks_refresh_cooldown_seconds=cooldown)
    server = provider.server
    server.publish(RSA_KEY)
    started = time.monotonic()
    assert api.gql("{ me }", token=RSA_KEY.token(user))["me"] == user
    assert api.gql("{ me }", token=RSA_KEY.token(user, "user admin"))["me"] == user
    assert server.fetches == 1  # fetched once, then kept

    rotated = SigningKey("ec")
    server.publish(RSA_KEY, rotated)
    # Within the cooldown of the last fetch an unknown kid is refused without a refetch.
    assert code(api, "{ me }", rotated.token(user)) == "UNAUTHENTICATED"
    assert time.monotonic() - started < cooldown, "the machine was too slow to check the cooldown"
    assert server.fetches == 1
    time.sleep(max(0.0, cooldown - (time.monotonic() - started)) + 0.2)
    assert api.gql("{ me }", token=rotated.token(user))["me"] == user
    assert server.fetches == 2
    # A flood of made-up kids costs no fetch within the cooldown.
    for n in range(5):
        assert code(api, "{ me }", RSA_KEY.token(user, kid=f"made-up-{n}")) == "UNAUTHENTICATED"
    assert server.fetches == 2

    # The provider retires the RSA key: the next refetch drops it, even for a token verified before.
    remembered = RSA_KEY.token(user)
    assert api.gql("{ me }", token=remembered)["me"] == user
    server.publish(rotated)
    time.sleep(cooldown + 0.2)
    assert code(api, "{ me }", RSA_KEY.token(user, kid="made-up-again")) == "UNAUTHENTICATED"
    assert server.fetches == 3
    assert code(api, "{ me }", remembered) == "UNAUTHENTICATED"
    assert api.gql("{ me }", token=rotated.token(user))["me"] == user


@pytest.mark.parametrize("mapping", ["permissions", "cognito", "keycloak"])
def test_the_scopes_and_user_claims_are_configurable(provider: Any, user: str, mapping: str) -> None:
    if mapping == "permissions":  # Auth0 RBAC: a list claim, and the user id in a namespaced claim
        api = provider(jwt_scopes_claim="permissions", jwt_user_claim="https://billing.example.com/uid")

        def token(uid: str, words: list[str]) -> str:
            return RSA_KEY.token("auth0|123", "openid", permissions=words, **{"https://billing.example.com/uid": uid})
    elif mapping == "cognito":  # access tokens: no `aud` but `client_id`; groups prefixed subledger-*
        api = provider(jwt_scopes_claim="cognito:groups", jwt_scope_prefix="subledger-",
                       jwt_audience_claim="client_id", jwt_audience="app-client-1")

        def token(uid: str, words: list[str], client: str = "app-client-1") -> str:
            groups = [f"subledger-{w}" for w in words] + ["admin"]
            return EC_KEY.token(uid, None, aud=None, client_id=client, token_use="access", **{"cognito:groups": groups})
    else:  # Keycloak realm roles, a nested claim
        api = provider(jwt_scopes_claim="realm_access.roles")

        def token(uid: str, words: list[str]) -> str:
            return RSA_KEY.token(uid, "openid admin", realm_access={"roles": words})

    assert api.gql("{ me }", token=token(user, ["user"]))["me"] == user
    assert api.gql(ADJUST, {"u": user}, token=token("ops", ["admin"]))["adjustPoints"]["amount"] == 500
    before = head(api)
    # `scope` says admin (and Cognito's bare `admin` group) but the configured claim does not: FORBIDDEN.
    assert code(api, ADJUST, token("ops", ["user", "analyst"]), {"u": user}) == "FORBIDDEN"
    assert head(api) == before
    assert api.gql(WALLET, token=token(user, ["user"]))["wallet"]["totalBalance"] == 500
    if mapping == "permissions":  # the user id claim is required
        no_uid = RSA_KEY.token("auth0|123", "openid", permissions=["admin"])
        assert code(api, ADJUST, no_uid, {"u": user}) == "UNAUTHENTICATED"
    if mapping == "cognito":  # another app client of the pool, or none
        assert code(api, ADJUST, token("ops", ["admin"], client="other-client"), {"u": user}) == "UNAUTHENTICATED"
        assert code(api, ADJUST, EC_KEY.token("ops", None, **{"cognito:groups": ["subledger-admin"]}),
                    {"u": user}) == "UNAUTHENTICATED"
    assert head(api) == before


def test_a_down_key_server_keeps_cached_keys_and_refuses_new_kids(api_factory: Any, user: str) -> None:
    server = KeyServer()
    server.publish(RSA_KEY)
    with serve_asgi(server.app(), lifespan="off") as url:
        api = api_factory(jwks_url=f"{url}/.well-known/jwks.json", jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                          jwks_cache_seconds=1, jwks_refresh_cooldown_seconds=0)
        assert api.gql("{ me }", token=RSA_KEY.token(user))["me"] == user
    time.sleep(1.2)  # the server is gone and the kept set is past its lifespan
    assert api.gql("{ me }", token=RSA_KEY.token(user, "user admin"))["me"] == user
    assert api.gql(ADJUST, {"u": user}, token=RSA_KEY.token("ops", "admin"))["adjustPoints"]["amount"] == 500
    before = head(api)
    assert code(api, ADJUST, EC_KEY.token("ops", "admin"), {"u": user}) == "UNAUTHENTICATED"
    assert head(api) == before


def test_a_slow_key_server_does_not_hold_up_other_requests(provider: Any, user: str) -> None:
    api = provider()
    provider.server.delay = 3.0
    answers: dict[int, Any] = {}
    waiting = [threading.Thread(target=lambda n=n: answers.update({n: api.post("{ me }", None, RSA_KEY.token(user))}))
               for n in range(3)]
    for thread in waiting:
        thread.start()
    while provider.server.fetches == 0:
        time.sleep(0.01)
    started = time.monotonic()
    assert api.gql("{ clock { controllable } }")["clock"]["controllable"] is True
    assert time.monotonic() - started < 1.5  # a blocked event loop would take the 3 s of the fetch
    for thread in waiting:
        thread.join(timeout=30)
    assert [answers[n]["data"]["me"] for n in range(3)] == [user] * 3
    assert provider.server.fetches == 1
