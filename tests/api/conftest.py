"""The whole service over real HTTP: `api` builds it from settings on the test's
database (SQLite and PostgreSQL), serves it with uvicorn, and talks GraphQL to it."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from schema.auth import mint_token
from subledger.app import Built, build
from subledger.ledger_setup import migrate_database
from subledger.settings import Settings
from tests.servers import serve_asgi

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
CRON_SECRET = "cron-secret-for-tests"
CLOCK_START = "2026-03-01T10:00:00+09:00"
GOOD_CARD = "test_card_4300000000000001"
POOR_CARD = "test_card_4300000000000002"


class GraphQLError(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors
        self.code = errors[0].get("extensions", {}).get("code")
        self.extensions = errors[0].get("extensions", {})


@dataclass
class Api:
    url: str
    built: Built
    client: httpx.Client
    sandbox: SandboxEngine
    server: Any = None
    closed: bool = False

    def close(self) -> None:
        """Stop the server (its lifespan closes the ledger and the read models), as a restart would."""
        if not self.closed:
            self.closed = True
            self.client.close()
            self.server.__exit__(None, None, None)

    def token(self, user: str, scope: str = "user") -> str:
        return mint_token(JWT_SECRET, user, scope)

    def post(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        return response.json()

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = None, scope: str = "user", token: str | None = None) -> dict[str, Any]:
        """Run an operation; return its data, or raise GraphQLError with the first error's code."""
        body = self.post(query, variables, token or (self.token(user, scope) if user else None))
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]

    def error(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> GraphQLError:
        """Run an operation that must fail; return its error."""
        try:
            data = self.gql(query, variables, **kwargs)
        except GraphQLError as error:
            return error
        raise AssertionError(f"expected an error, got {data}")

    def settle_read_models(self, timeout: float = 20) -> None:
        """Wait until every projection has caught up with the ledger (list queries may lag)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(row["lag"] == 0 for row in self.built.services.projections()):
                return
            time.sleep(0.01)
        raise AssertionError("projections did not catch up")

    def add_card(self, user: str, card: str = GOOD_CARD) -> str:
        data = self.gql(
            "mutation($k: String!, $c: String!) { registerPaymentMethod(input: {provider: SANDBOX, authKey: $k, customerKey: $c}) { id } }",
            {"k": card, "c": f"cust-{user}"},
            user=user,
        )
        return data["registerPaymentMethod"]["id"]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values = {
        "database_url": database_url,
        "jwt_secret": JWT_SECRET,
        "cron_secret": CRON_SECRET,
        "clock": "test",
        "clock_start": CLOCK_START,
        "gateway_retry_base_seconds": 0.01,
        "threads": 8,
        # Tests crash and settle within seconds of wall time; the settle grace (which keeps a
        # run from looking up a charge still in its own request) has tests of its own.
        "settle_grace_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


def module_database_url(kind: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database for a server shared by a test module (`kind`: the module fixture's param,
    "sqlite" or "postgres"): a SQLite file of its own, or a PostgreSQL schema of its own."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('module') / 'ledger.db'}"
    from tests.conftest import POSTGRES_URL, _require

    base = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    return f"{base}{'&' if '?' in base else '?'}schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api_factory(database_url: str) -> Iterator[Any]:
    """Start the service (possibly again, on the same database) with given settings."""
    started: list[Any] = []

    def start(**overrides: Any) -> Api:
        sandbox = overrides.pop("sandbox", None) or SandboxEngine()
        settings = make_settings(database_url, **overrides)
        if not settings.migrates_on_start:  # production checks only: `subledger migrate` first, as compose does
            migrate_database(settings)
        built = build(settings, sandbox=sandbox)
        context = serve_asgi(built.http)
        url = context.__enter__()
        api = Api(url=url, built=built, client=httpx.Client(timeout=180, verify=client_ssl_context()), sandbox=sandbox, server=context)
        started.append(api)
        return api

    yield start
    for api in reversed(started):
        api.close()


@pytest.fixture
def api(api_factory: Any) -> Api:
    return api_factory()


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"
