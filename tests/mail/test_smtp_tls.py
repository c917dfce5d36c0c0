"""E-mail over TLS to the real SMTP server process, with a certificate made for the test:
STARTTLS with AUTH, implicit TLS, and what a wrong password or an untrusted certificate
does (retried, visible, and the password in no error or log line)."""
from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Api
from tests.mail.conftest import SmtpServer, notifications_of, smtp_settings, wait_for_notification, with_address
from tests.scenarios.helpers import subscribe

PASSWORD = "s3cret-smtp-password-for-the-test"


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_sent_over_tls_with_login(api_factory, user: str, smtp_server: SmtpServer, tls_files: tuple[str, str], mode: str) -> None:
    cert, key = tls_files
    smtp_server.start("--cert", cert, "--key", key, "--starttls" if mode == "starttls" else "--implicit-tls",
                      "--username", "mailer", password=PASSWORD)
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_tls=mode, smtp_ca_file=cert, smtp_username="mailer",
                                           smtp_password=PASSWORD))
    address = with_address(api, user)
    subscribe(api, user, "free")
    sent = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "SENT", what="SENT over TLS")
    [received] = smtp_server.messages()
    assert (received["rcpt_tos"], received["encrypted"], received["login"]) == ([address], True, "mailer")
    assert sent["deliveryAttempts"] == 1


def test_a_wrong_password_is_retried_and_never_shown(
    api_factory, user: str, smtp_server: SmtpServer, tls_files: tuple[str, str], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # where structlog writes once a test configured it for stdlib logging
    cert, key = tls_files
    smtp_server.start("--cert", cert, "--key", key, "--starttls", "--username", "mailer", password=PASSWORD)
    wrong = "not-the-password-" + PASSWORD[::-1]
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_tls="starttls", smtp_ca_file=cert, smtp_username="mailer",
                                           smtp_password=wrong))
    with_address(api, user)
    subscribe(api, user, "free")
    refused = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "RETRYING", what="RETRYING")
    assert refused["lastDeliveryError"].startswith("535"), refused["lastDeliveryError"]
    assert smtp_server.messages() == []
    output = capsys.readouterr()
    logged = output.out + output.err + caplog.text
    assert "notification_send_failed" in logged
    assert wrong not in logged and wrong not in refused["lastDeliveryError"]
    assert "SecretStr('**********')" in repr(api.built.settings.smtp_password)


def test_an_untrusted_certificate_is_not_used(api_factory, user: str, smtp_server: SmtpServer, tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    smtp_server.start("--cert", cert, "--key", key, "--starttls")
    api: Api = api_factory(**smtp_settings(smtp_server, smtp_tls="starttls"))  # the test's CA is not trusted
    with_address(api, user)
    subscribe(api, user, "free")
    refused = wait_for_notification(api, user, lambda n: n["deliveryStatus"] == "RETRYING", what="RETRYING")
    assert "CERTIFICATE_VERIFY_FAILED" in refused["lastDeliveryError"] or "certificate" in refused["lastDeliveryError"].lower()
    assert smtp_server.messages() == []
    assert notifications_of(api, user)[0]["sentAt"] is None
