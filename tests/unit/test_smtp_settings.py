"""SUBLEDGER_SMTP_* are checked at startup: each problem is one line naming its variable,
and the password is never repeated back."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from subledger.settings import Settings, configuration_errors
from workers.notifications import LogOnlySender, SmtpSender, WithheldSender, sender_for, smtp_config
from workers.smtp_client import TlsMode

PASSWORD = "pw-that-must-never-show-9f3a"
BASE = {"database_url": "sqlite:///:memory:", "smtp_host": "smtp.example.com", "smtp_from": "billing@example.com"}

REFUSED = {
    "no From": ({"smtp_from": None}, "SUBLEDGER_SMTP_FROM"),
    "a From that is no address": ({"smtp_from": "billing at example"}, "SUBLEDGER_SMTP_FROM"),
    "port 0": ({"smtp_port": 0}, "SUBLEDGER_SMTP_PORT"),
    "port 70000": ({"smtp_port": 70000}, "SUBLEDGER_SMTP_PORT"),
    "an unknown TLS mode": ({"smtp_tls": "ssl"}, "SUBLEDGER_SMTP_TLS"),
    "a password in clear text": ({"smtp_tls": "none", "smtp_username": "u", "smtp_password": PASSWORD}, "SUBLEDGER_SMTP_TLS"),
    "a username without password": ({"smtp_username": "u"}, "SUBLEDGER_SMTP_PASSWORD"),
    "a password without username": ({"smtp_password": PASSWORD}, "SUBLEDGER_SMTP_USERNAME"),
    "no timeout": ({"smtp_timeout": 0}, "SUBLEDGER_SMTP_TIMEOUT"),
    "no attempt": ({"smtp_max_attempts": 0}, "SUBLEDGER_SMTP_MAX_ATTEMPTS"),
    "a negative retry base": ({"smtp_retry_base_seconds": -1}, "SUBLEDGER_SMTP_RETRY_BASE_SECONDS"),
    "a CA file that is not there": ({"smtp_ca_file": "/nonexistent/ca.pem"}, "SUBLEDGER_SMTP_CA_FILE"),
    "a password without host": ({"smtp_host": None, "smtp_username": "u", "smtp_password": PASSWORD}, "SUBLEDGER_SMTP_HOST"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_each_bad_smtp_setting_is_one_line_naming_its_variable(case: str) -> None:
    change, variable = REFUSED[case]
    with pytest.raises(ValidationError) as refused:
        Settings(**{**BASE, **change})
    lines = configuration_errors(refused.value)
    assert len(lines) == 1 and variable in lines[0], lines
    assert PASSWORD not in lines[0] and PASSWORD not in str(refused.value)


def test_the_settings_make_one_smtp_configuration() -> None:
    assert Settings(database_url="sqlite:///:memory:", smtp_host=" ").smtp_host is None  # blank is unset
    with pytest.raises(ValidationError) as refused:
        Settings(**{**BASE, "smtp_host": ""}, smtp_username="mailer", smtp_password=PASSWORD)
    assert configuration_errors(refused.value) == ["SUBLEDGER_SMTP_USERNAME is set but SUBLEDGER_SMTP_HOST is not"]
    settings = Settings(**BASE, smtp_username="mailer", smtp_password=PASSWORD, smtp_tls="tls")
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    config = smtp_config(settings)
    assert (config.port, config.tls, config.password, config.envelope_from) == (465, TlsMode.TLS, PASSWORD, "billing@example.com")
    assert PASSWORD not in repr(config)
    assert smtp_config(Settings(**BASE)).port == 587 and smtp_config(Settings(**BASE, smtp_tls="none")).port == 25
    assert [config.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert config.backoff(40) == timedelta(hours=1)


def test_without_smtp_development_logs_and_production_withholds() -> None:
    assert isinstance(sender_for(Settings(**BASE), None, None), SmtpSender)
    assert isinstance(sender_for(Settings(database_url="sqlite:///:memory:"), None, None), LogOnlySender)
    production = Settings.model_construct(**{**Settings(database_url="sqlite:///:memory:").model_dump(), "env": "production"})
    assert isinstance(sender_for(production, None, None), WithheldSender)
