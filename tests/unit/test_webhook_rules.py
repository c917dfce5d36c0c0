"""The pure webhook rules: URLs, the signature, the retry schedule (domain/webhooks.py)."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from domain.errors import InvalidInput
from domain.webhooks import RetryPolicy, check_url, new_secret, signature_header
from tests.webhook_support import docs_verify


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "http://127.0.0.1:8080/hooks?x=1", "HTTPS://A.example"])
def test_http_and_https_urls_are_taken_in_development(url: str) -> None:
    assert check_url(f"  {url} ", https_only=False) == url


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com/x", "https://", "http://u:p@example.com/",
                                 "https://example.com:70000/", "https://exa mple.com/", "", "https://x/" + "a" * 2048])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, https_only=False)


def test_production_takes_https_only() -> None:
    assert check_url("https://hooks.example.com/x", https_only=True) == "https://hooks.example.com/x"
    with pytest.raises(InvalidInput, match="https://"):
        check_url("http://hooks.example.com/x", https_only=True)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1","type":"payment.succeeded"}'
    header = signature_header("whsec_test", 1700000000, body)
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    # The docs' snippet refuses an old timestamp, a changed body and another secret.
    verify = docs_verify()
    assert not verify("whsec_test", body, header)  # 2023: far outside the tolerance
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) > 40 and secret != new_secret()


def test_delays_double_with_jitter_up_to_the_cap_and_stop_after_the_window() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, 0.5) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert policy.delay(1, 0.0) == timedelta(seconds=24) and policy.delay(1, 0.999) < timedelta(seconds=36)
    assert policy.delay(20, 0.5) == timedelta(hours=2) and policy.delay(200, 0.5) == timedelta(hours=2)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert policy.after_failure(start, start, 1, 0.5) == start + timedelta(seconds=30)
    assert policy.after_failure(start, start + timedelta(hours=23), 15, 0.5) is None  # 23 h + 2 h > 24 h
    # The whole schedule of a delivery that never succeeds: about 18 attempts over the day.
    now, attempts = start, 1
    while (now := policy.after_failure(start, now, attempts, 0.5)) is not None:
        attempts += 1
    assert 15 <= attempts <= 20
