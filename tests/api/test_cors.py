"""CORS (schema/cors.py): none by default; configured origins get their preflight and
CORS headers, others get neither; a bad origin is refused at startup naming the variable."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from subledger.settings import Settings, configuration_errors

APP = "https://app.example.com"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


def test_no_origin_is_allowed_by_default(api_factory) -> None:
    api = api_factory()
    preflight = api.client.options(f"{api.url}/graphql", headers=PREFLIGHT)
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
    answer = api.client.post(f"{api.url}/graphql", json={"query": "{ catalog { plans { id } } }"}, headers={"Origin": APP})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_a_configured_origin_gets_its_preflight_and_headers_and_others_do_not(api_factory) -> None:
    api = api_factory(cors_origins=f"{APP}, https://admin.example.com:8443", cors_max_age=120)
    preflight = api.client.options(f"{api.url}/graphql", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP
    assert set(preflight.headers["access-control-allow-methods"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert {"authorization", "content-type"} <= set(preflight.headers["access-control-allow-headers"].lower().replace(" ", "").split(","))
    assert preflight.headers["access-control-max-age"] == "120"
    assert "access-control-allow-credentials" not in preflight.headers

    token = api.token("cors-user", "user")
    answer = api.client.post(f"{api.url}/graphql", json={"query": "{ me }"},
                             headers={"Origin": APP, "Authorization": f"Bearer {token}"})
    assert answer.json()["data"]["me"] == "cors-user" and answer.headers["access-control-allow-origin"] == APP
    # The page's script may read the request id the answer carries.
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower() and answer.headers["x-request-id"]

    other = {**PREFLIGHT, "Origin": "https://evil.example.com"}
    refused = api.client.options(f"{api.url}/graphql", headers=other)
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    unknown = api.client.post(f"{api.url}/graphql", json={"query": "{ me }"}, headers={"Origin": other["Origin"]})
    assert "access-control-allow-origin" not in unknown.headers
    # A method not in SUBLEDGER_CORS_METHODS is refused at preflight.
    assert api.client.options(f"{api.url}/graphql", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"}).status_code == 400


@pytest.mark.parametrize("origins", ["app.example.com", "https://app.example.com/path", "ftp://x.example.com"])
def test_a_value_that_is_not_an_origin_is_refused_naming_the_variable(origins: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///x.db", cors_origins=origins)
    (line,) = configuration_errors(refused.value)
    assert line.startswith("SUBLEDGER_CORS_ORIGINS:") and "not an origin" in line
