"""Secret shapes are redacted from log lines and printed settings (SPEC §7), and
secret event fields are shown as "[sealed]" wherever event data is presented."""
from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypothesis import example, given, settings, strategies as st

from domain.customer import Customer
from domain.personal_data import SEALED, personal_fields, redact as redact_data, secret_names
from subledger.logging import REDACTED, _apply_rules, configure_logging, redact, redact_url

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
SANDBOX_KEY = "bk_sbx_4300000000000001_3f2a9c_a1b2c3d4e5f6"
TOSS_KEY = "Z_t5vOvQxrj4499PeiJcjen28-zqEqJ3v_hK"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f'HTTP Request: POST http://127.0.0.1:9/v1/billing/{TOSS_KEY} "HTTP/1.1 200 OK"', TOSS_KEY),
        (f"POST /sandbox/billing/{SANDBOX_KEY}/outcome", SANDBOX_KEY),
        (f"charged with {SANDBOX_KEY} ok", SANDBOX_KEY),
        ("Authorization: Basic dGVzdF9za19zZWNyZXQ6", "dGVzdF9za19zZWNyZXQ6"),
        (f"headers={{'authorization': 'Bearer {JWT}'}}", JWT),
        (f"token {JWT} refused", JWT),
        ("gateway key test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R", "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"),
        ("live_sk_abcdEFGH1234 in use", "live_sk_abcdEFGH1234"),
        ("connecting to postgresql://ledger:s3cr3t-pw@db:5432/subledger", "s3cr3t-pw"),
        ("redis://:r3dis-pw@cache:6379/0", "r3dis-pw"),
        ('{"billingKey": "opaque-key-without-a-shape"}', "opaque-key-without-a-shape"),
        ("cron_secret=hunter2-cron", "hunter2-cron"),
        ("password=pa55word", "pa55word"),
    ],
)
def test_each_secret_shape_is_redacted(line: str, secret: str) -> None:
    assert secret in line
    out = redact(line)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "line",
    [
        "POST http://127.0.0.1:8000/v1/billing/authorizations/issue",
        "subscribed plan=basic period=monthly",
        "http://localhost:8000/graphql",
        "renewal_run due=12 charged=11 failed=1",
        "payment pay_0123 SUCCEEDED amount=9900",
    ],
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact(line) == line


_VALUE = st.text(alphabet="abcXYZ0189-_.~+/", min_size=1, max_size=12)
#: Every secret shape the rules know, spelled in the cases they fold ("ſ" folds to "s", "K" to "k").
_SHAPES = st.one_of(
    st.tuples(st.sampled_from(["password", "PassWD", "ſecret", "toKen", "billing_key", "billingKey", "API_KEY",
                               "cipherkey", "master_Key", "authorization"]), st.sampled_from(["=", ": ", '": "']), _VALUE),
    st.tuples(st.sampled_from(["Basic ", "Bearer ", "BEARER ", "bearer\t"]), _VALUE, _VALUE),
    st.tuples(st.sampled_from(["test_sk_", "live_gsk_", "test_ck_", "bk_sbx_", "/billing/", "/sandbox/billing/"]), _VALUE),
    st.tuples(st.sampled_from(["postgresql://u:", "redis://:"]), _VALUE, st.just("@host")),
    st.tuples(st.just("eyJ"), _VALUE, st.just("."), _VALUE, st.just("."), _VALUE),
).map("".join)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_SHAPES, st.text(max_size=6), st.sampled_from([" ", "plan=basic", "route=/graphql", "@"])),
                max_size=4).map("".join))
@example("authorization: opaque-value")
@example("x bk_sbx_abc")
@example("eyJa.b.c")
@example("test_ck_abc")
@example("Basic dGVzdF9za19zZWNy")
def test_the_fast_path_leaves_alone_only_what_no_rule_would_change(line: str) -> None:
    # `redact` skips the rules for a line with no secret's fragment in it: it must answer
    # exactly what the rules would, whatever the line.
    assert redact(line) == _apply_rules(line)


def test_printed_database_url_keeps_everything_but_the_password() -> None:
    assert redact_url("postgresql://ledger:s3cr3t@db:5432/subledger?schema=x") == (
        f"postgresql://ledger:{REDACTED}@db:5432/subledger?schema=x"
    )
    assert redact_url("sqlite:///./subledger.db") == "sqlite:///./subledger.db"


def test_every_log_path_redacts(caplog: pytest.LogCaptureFixture) -> None:
    """structlog events, stdlib records (with arguments, through our handler and pytest's), tracebacks."""
    stream = io.StringIO()
    configure_logging("production", level=logging.DEBUG, stream=stream)
    caplog.set_level(logging.DEBUG)
    structlog.get_logger("t").info("charge_sent", url=f"/v1/billing/{TOSS_KEY}", secret_key="test_sk_abcdefgh", note=JWT)
    logging.getLogger("httpx").warning("HTTP Request: %s %s", "POST", f"http://gw/v1/billing/{TOSS_KEY}")
    logging.getLogger("t").info("dsn %s", "postgresql://u:pw-in-url@h/db")
    try:
        raise RuntimeError(f"gateway said no to {SANDBOX_KEY}")
    except RuntimeError:
        logging.getLogger("t").exception("charge failed")
    written = stream.getvalue()
    captured = caplog.text + "".join(str(r.msg) + str(r.args) for r in caplog.records)
    lines = [json.loads(line) for line in written.splitlines()]
    assert len(lines) == 4  # every line was written (JSON), none dropped
    for secret in (TOSS_KEY, "test_sk_abcdefgh", JWT, "pw-in-url", SANDBOX_KEY):
        assert secret not in written
        assert secret not in captured
    assert "/v1/billing/[redacted]" in written and "/v1/billing/[redacted]" in caplog.text


def test_a_structlog_event_is_redacted_once_and_as_a_whole(caplog: pytest.LogCaptureFixture) -> None:
    """The record factory and the filter no longer redact structlog's events a second time:
    the processor alone must cover what they covered, underscore keys and nested values too;
    a dict given as a message by anyone else is still redacted when its record is made."""
    stream = io.StringIO()
    configure_logging("production", level=logging.DEBUG, stream=stream)
    caplog.set_level(logging.DEBUG)
    structlog.get_logger("t").info(
        "charge_sent", _api_key="plain-value-1", nested={"password": "plain-value-2", "url": f"/v1/billing/{TOSS_KEY}"}
    )
    logging.getLogger("t").info({"password": "plain-value-3", "note": JWT})
    written = stream.getvalue()
    captured = caplog.text + "".join(str(r.msg) for r in caplog.records)
    first = json.loads(written.splitlines()[0])
    assert first["_api_key"] == REDACTED and first["nested"]["password"] == REDACTED
    assert first["nested"]["url"] == f"/v1/billing/{REDACTED}"
    for secret in ("plain-value-1", "plain-value-2", "plain-value-3", TOSS_KEY, JWT):
        assert secret not in written
        assert secret not in captured


def test_httpx_request_lines_are_below_the_configured_level() -> None:
    configure_logging("development", level=logging.INFO, stream=io.StringIO())
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiohttp.client").isEnabledFor(logging.INFO)  # the gateways' transport


def test_billing_keys_are_sealed_and_shown_as_sealed() -> None:
    assert "billing_key" in personal_fields(Customer.PaymentMethodAdded)
    assert "card_masked" in personal_fields(Customer.PaymentMethodAdded)
    assert "billing_key" in secret_names()
    state = {"payment_methods": {"pm_1": {"billing_key": TOSS_KEY, "card_masked": "4300****0001"}}, "billing_key": None}
    assert redact_data(state) == {"payment_methods": {"pm_1": {"billing_key": SEALED, "card_masked": "4300****0001"}}, "billing_key": None}
