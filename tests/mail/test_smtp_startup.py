"""Startup and the cases without SMTP: `subledger serve` refuses a bad SMTP setting in one
line; production without SMTP sends nothing and marks nothing (all stays PENDING, visible)."""
from __future__ import annotations

import logging

import time
from pathlib import Path

import pytest

from subledger.master_keys import generate_key
from tests.api.conftest import Api
from tests.integration.test_production_mode import assert_refused, production_env, run
from tests.mail.conftest import notifications_of, with_address
from tests.scenarios.helpers import subscribe


@pytest.mark.parametrize("change, variable", [
    ({"SUBLEDGER_SMTP_HOST": "smtp.example.com"}, "SUBLEDGER_SMTP_FROM"),
    ({"SUBLEDGER_SMTP_HOST": "smtp.example.com", "SUBLEDGER_SMTP_FROM": "billing@example.com", "SUBLEDGER_SMTP_TLS": "none",
      "SUBLEDGER_SMTP_USERNAME": "mailer", "SUBLEDGER_SMTP_PASSWORD": "clear-text-password-never-shown"}, "SUBLEDGER_SMTP_TLS"),
])
def test_serve_refuses_a_bad_smtp_setting_in_one_line(tmp_path: Path, change: dict[str, str], variable: str) -> None:
    env = {**production_env(tmp_path), **change}
    done = run(env, "serve", "--port", "0")
    assert_refused(done, variable, env)
    assert "clear-text-password-never-shown" not in done.stdout + done.stderr


def test_production_without_smtp_leaves_notifications_unsent_and_visible(
    api_factory, user: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # where structlog writes once a test configured it for stdlib logging
    api: Api = api_factory(env="production", gateway="toss", toss_secret_key="live_sk_" + "0" * 24,
                           toss_base_url="http://127.0.0.1:9", master_key=generate_key(), clock="system",
                           clock_start=None, cron_endpoint=False)
    with_address(api, user)
    subscribe(api, user, "free")
    time.sleep(4.5)  # two passes of the outbox follower, and a scheduled run:
    runs = api.gql("mutation { runScheduledJobs { job processed succeeded failed } }", user="cron", scope="cron")
    assert {(r["processed"], r["succeeded"]) for r in runs["runScheduledJobs"] if r["job"] == "send_notifications"} == {(0, 0)}
    [welcome] = notifications_of(api, user)
    assert (welcome["kind"], welcome["deliveryStatus"], welcome["deliveryAttempts"], welcome["sentAt"]) == ("WELCOME", "PENDING", 0, None)
    assert "notifications_withheld" in capsys.readouterr().out + caplog.text
