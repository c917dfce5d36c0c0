"""The PortOne settings: `SUBLEDGER_GATEWAY=portone` needs its API secret and store id, a bad
value is refused at startup in one line naming the variable (never its value), and the
secret never shows in the settings' printed form."""
from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from subledger.settings import Settings, configuration_errors

SECRET = "portone-secret-that-must-never-show"


@pytest.mark.parametrize(("settings", "line"), [
    ({"portone_store_id": "store-1"},
     "SUBLEDGER_PORTONE_API_SECRET is required when SUBLEDGER_GATEWAY includes portone"),
    ({"portone_api_secret": "  ", "portone_store_id": "store-1"},
     "SUBLEDGER_PORTONE_API_SECRET is required when SUBLEDGER_GATEWAY includes portone"),
    ({"portone_api_secret": SECRET},
     "SUBLEDGER_PORTONE_STORE_ID is required when SUBLEDGER_GATEWAY includes portone"),
    ({"portone_api_secret": SECRET, "portone_store_id": "store-1", "portone_base_url": "api.portone.io"},
     "SUBLEDGER_PORTONE_BASE_URL must be an http(s) URL"),
])
def test_missing_or_bad_portone_settings_are_refused_in_one_line(settings: dict, line: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///x.db", gateway="sandbox,portone", **settings)
    assert configuration_errors(refused.value) == [line]
    assert SECRET not in str(refused.value)


def test_production_refuses_the_look_alikes_test_secret() -> None:
    production = {"env": "production", "jwt_secret": "s" * 40, "cron_endpoint": False, "gateway": "portone",
                  "portone_store_id": "store-1", "master_key": base64.b64encode(bytes(32)).decode()}
    Settings(database_url="sqlite:///x.db", portone_api_secret=SECRET, **production)
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="sqlite:///x.db", portone_api_secret="test_portone_x", **production)
    assert configuration_errors(refused.value) == [
        "SUBLEDGER_PORTONE_API_SECRET is the sandbox's test secret: production refuses it"]


def test_the_secret_is_never_printed_and_portone_is_optional() -> None:
    settings = Settings(database_url="sqlite:///x.db", gateway="portone", portone_api_secret=SECRET, portone_store_id="s")
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.providers_named == ["portone"]
    assert Settings(database_url="sqlite:///x.db").portone_api_secret is None  # not enabled: nothing needed
