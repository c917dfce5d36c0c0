"""Production mode refuses to start without real secrets: `subledger serve` as a process,
each refusal one line on stderr naming the variable, exit 2, no traceback, nothing
opened (the SQLite file is never created); and a complete production configuration
does start. Malformed keys are refused the same way by every command that starts.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.tls import client_ssl_context
from subledger.master_keys import generate_key

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "SUBLEDGER_ENV": "production",
        "SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "SUBLEDGER_JWT_SECRET": secrets.token_urlsafe(32),
        "SUBLEDGER_CRON_SECRET": secrets.token_urlsafe(32),
        "SUBLEDGER_GATEWAY": "toss",
        "SUBLEDGER_TOSS_SECRET_KEY": "live_sk_" + secrets.token_hex(12),
        "SUBLEDGER_TOSS_BASE_URL": "http://127.0.0.1:9",  # never called at startup
        "SUBLEDGER_MASTER_KEY": generate_key(),
    }


def run(env: dict[str, str | None], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    clean.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-m", "subledger.cli", *args], env=clean, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def assert_refused(done: subprocess.CompletedProcess, variable: str, env: dict[str, str | None]) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subledger: ") and variable in lines[0], done.stderr
    for name, value in env.items():  # no secret repeated back
        if value and ("SECRET" in name or "KEY" in name) and len(value) >= 8:
            assert value not in done.stderr + done.stdout, name


REFUSALS = {
    "no JWT secret": ({"SUBLEDGER_JWT_SECRET": None}, "SUBLEDGER_JWT_SECRET"),
    "short JWT secret": ({"SUBLEDGER_JWT_SECRET": "s" * 31}, "SUBLEDGER_JWT_SECRET"),
    "no cron secret while /cron/run is served": ({"SUBLEDGER_CRON_SECRET": None}, "SUBLEDGER_CRON_SECRET"),
    "short cron secret": ({"SUBLEDGER_CRON_SECRET": "c" * 20}, "SUBLEDGER_CRON_SECRET"),
    "Toss test key": ({"SUBLEDGER_TOSS_SECRET_KEY": "test_sk_" + "a" * 24}, "SUBLEDGER_TOSS_SECRET_KEY"),
    "no Toss key": ({"SUBLEDGER_TOSS_SECRET_KEY": None}, "SUBLEDGER_TOSS_SECRET_KEY"),
    "sandbox gateway": ({"SUBLEDGER_GATEWAY": "toss,sandbox"}, "SUBLEDGER_GATEWAY"),
    "no KakaoPay key": ({"SUBLEDGER_GATEWAY": "toss,kakaopay"}, "SUBLEDGER_KAKAO_SECRET_KEY"),
    "KakaoPay test cid": ({"SUBLEDGER_GATEWAY": "toss,kakaopay", "SUBLEDGER_KAKAO_SECRET_KEY": "PRD" + "k" * 30},
                          "SUBLEDGER_KAKAO_CID"),
    "no NaverPay partner id": ({"SUBLEDGER_GATEWAY": "toss,naverpay", "SUBLEDGER_NAVER_CLIENT_ID": "c",
                                "SUBLEDGER_NAVER_CLIENT_SECRET": "PRD" + "n" * 30, "SUBLEDGER_NAVER_CHAIN_ID": "ch"},
                               "SUBLEDGER_NAVER_PARTNER_ID"),
    "NaverPay test secret": ({"SUBLEDGER_GATEWAY": "toss,naverpay", "SUBLEDGER_NAVER_CLIENT_ID": "c",
                              "SUBLEDGER_NAVER_CLIENT_SECRET": "test_" + "n" * 30, "SUBLEDGER_NAVER_CHAIN_ID": "ch",
                              "SUBLEDGER_NAVER_PARTNER_ID": "np_x"}, "SUBLEDGER_NAVER_CLIENT_SECRET"),
    "NaverPay development servers": ({"SUBLEDGER_GATEWAY": "toss,naverpay", "SUBLEDGER_NAVER_CLIENT_ID": "c",
                                      "SUBLEDGER_NAVER_CLIENT_SECRET": "PRD" + "n" * 30, "SUBLEDGER_NAVER_CHAIN_ID": "ch",
                                      "SUBLEDGER_NAVER_PARTNER_ID": "np_x", "SUBLEDGER_NAVER_BASE_URL": "https://dev.apis.naver.com"},
                                     "SUBLEDGER_NAVER_BASE_URL"),
    "test clock": ({"SUBLEDGER_CLOCK": "test"}, "SUBLEDGER_CLOCK"),
    "no master key": ({"SUBLEDGER_MASTER_KEY": None}, "SUBLEDGER_MASTER_KEY"),
    "master key of 16 bytes": ({"SUBLEDGER_MASTER_KEY": generate_key(16)}, "SUBLEDGER_MASTER_KEY"),
    "master key not base64": ({"SUBLEDGER_MASTER_KEY": "correct horse battery staple!"}, "SUBLEDGER_MASTER_KEY"),
    "cipher key not base64": ({"SUBLEDGER_CIPHER_KEY": "not*base64"}, "SUBLEDGER_CIPHER_KEY"),
    "cipher key of 3 bytes": ({"SUBLEDGER_CIPHER_KEY": "YWJj"}, "SUBLEDGER_CIPHER_KEY"),
    "database URL of another kind": ({"SUBLEDGER_DATABASE_URL": "mysql://root:hunter2-password@db/x"}, "SUBLEDGER_DATABASE_URL"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_production_serve_refuses_in_one_line(tmp_path: Path, case: str) -> None:
    change, variable = REFUSALS[case]
    env = {**production_env(tmp_path), **change}
    assert_refused(run(env, "serve", "--port", "0"), variable, env)
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(
    "command", [["worker"], ["projector"], ["audit", "verify"], ["keys", "rotate"], ["keys", "encrypt-ledger"], ["token", "--user", "u"]]
)
def test_every_command_refuses_a_malformed_key_in_one_line(tmp_path: Path, command: list[str]) -> None:
    env = {"SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "SUBLEDGER_REDIS_URL": "redis://127.0.0.1:9/0",
           "SUBLEDGER_CIPHER_KEY": "c2hvcnQ"}
    assert_refused(run(env, *command), "SUBLEDGER_CIPHER_KEY", env)
    env = {**env, "SUBLEDGER_CIPHER_KEY": None, "SUBLEDGER_MASTER_KEY_PREVIOUS": "%%%"}
    assert_refused(run(env, *command), "SUBLEDGER_MASTER_KEY_PREVIOUS", env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(env: dict[str, str], stderr: Any = subprocess.PIPE) -> tuple[subprocess.Popen, str]:
    """`subledger serve` as a process, once it answers /healthz; its stderr to `stderr` (a pipe
    by default; a file for a test that reads many log lines)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    if env.get("SUBLEDGER_ENV") == "production" and "SUBLEDGER_MIGRATE_ON_START" not in env:
        # Production only checks the database at start: migrate it first, as compose's `migrate` service does.
        migrated = run(env, "migrate")
        assert migrated.returncode == 0, migrated.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "serve", "--port", str(port)], env={**clean, **env}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=stderr, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=client_ssl_context()).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("serve did not start")


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    out, err = process.communicate(timeout=30)
    return out + (err or "")


@pytest.mark.parametrize("cron_endpoint", [True, False])
def test_a_complete_production_configuration_starts(tmp_path: Path, cron_endpoint: bool) -> None:
    env = production_env(tmp_path)
    if not cron_endpoint:
        env["SUBLEDGER_CRON_ENDPOINT"] = "false"
        del env["SUBLEDGER_CRON_SECRET"]  # not needed when /cron/run is not served
    process, url = serve(env)
    try:
        cron = httpx.post(f"{url}/cron/run", timeout=10, verify=client_ssl_context())
        assert cron.status_code == (401 if cron_endpoint else 404)
        if cron_endpoint:
            ran = httpx.post(f"{url}/cron/run", headers={"Authorization": f"Bearer {env['SUBLEDGER_CRON_SECRET']}"}, timeout=30, verify=client_ssl_context())
            assert ran.status_code == 200 and "runs" in ran.json()
        # No development token, no GraphiQL in production.
        assert httpx.get(f"{url}/graphql", headers={"Accept": "text/html"}, timeout=10, verify=client_ssl_context()).status_code != 200
    finally:
        output = stop(process)
    assert "development token" not in output and "Traceback" not in output
    for name in ("SUBLEDGER_JWT_SECRET", "SUBLEDGER_MASTER_KEY", "SUBLEDGER_TOSS_SECRET_KEY"):
        assert env[name] not in output
