"""The identity-provider settings (SUBLEDGER_JWKS_URL and its SUBLEDGER_JWT_* companions) are
checked at startup: a bad combination is refused in one line naming the variable."""
from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from subledger.settings import Settings, configuration_errors


@pytest.mark.parametrize(("settings", "variable"), [
    ({"jwks_url": "https://idp.example/jwks.json", "jwt_audience": "api"}, "SUBLEDGER_JWT_ISSUER"),
    ({"jwks_url": "https://idp.example/jwks.json", "jwt_issuer": "https://idp.example/"}, "SUBLEDGER_JWT_AUDIENCE"),
    ({"jwks_url": "ftp://idp.example/jwks.json", "jwt_issuer": "i", "jwt_audience": "a"}, "SUBLEDGER_JWKS_URL"),
    ({"jwks_url": "https://idp.example/k", "jwt_issuer": "i", "jwt_audience": "a", "jwt_algorithms": "RS256,none"},
     "SUBLEDGER_JWT_ALGORITHMS"),
    ({"jwks_url": "https://idp.example/k", "jwt_issuer": "i", "jwt_audience": "a", "jwt_algorithms": "HS256"},
     "SUBLEDGER_JWT_ALGORITHMS"),
    ({"jwt_issuer": "https://idp.example/"}, "SUBLEDGER_JWT_ISSUER"),
    ({"jwks_url": "https://idp.example/k", "jwt_issuer": "i", "jwt_audience": "a", "jwks_cache_seconds": 0},
     "SUBLEDGER_JWKS_CACHE_SECONDS"),
])
def test_a_bad_identity_provider_setting_is_refused_in_one_line_naming_it(settings: dict, variable: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///x.db", **settings)
    (line,) = configuration_errors(refused.value)
    assert line.startswith(variable) and "\n" not in line, line


def test_production_needs_https_for_the_key_set() -> None:
    production = {"env": "production", "jwt_secret": "s" * 40, "cron_endpoint": False, "gateway": "toss",
                  "toss_secret_key": "live_sk_x", "master_key": base64.b64encode(bytes(32)).decode()}
    Settings(database_url="sqlite:///x.db", jwks_url="https://idp.example/jwks", jwt_issuer="i", jwt_audience="a",
             **production)
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///x.db", jwks_url="http://idp.internal/jwks", jwt_issuer="i",
                 jwt_audience="a", **production)
    assert configuration_errors(refused.value) == ["SUBLEDGER_JWKS_URL must be https in production"]
