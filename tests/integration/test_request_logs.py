"""Request ids and logs, from a real `subledger serve` process in production mode: every line
on its stderr is JSON, each request's lines carry its id (the caller's X-Request-ID, or a new
one, answered in the same header), one access line per request, standard-library records
(uvicorn's) with their fields as fields, SUBLEDGER_LOG_LEVEL honoured and a bad one refused.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.tls import client_ssl_context
from schema.auth import mint_token
from tests.integration.test_production_mode import assert_refused, production_env, run, serve, stop

PROJECTIONS = "{ projections { name lag } }"


def start(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen, str, dict[str, str], Path]:
    env = {**production_env(tmp_path), **extra}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        process, url = serve(env, stderr=log_file)
    return process, url, env, log_path


def stopped_lines(process: subprocess.Popen, log_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Stop the server; its stderr, and each of its lines as JSON (every line must be)."""
    stop(process)
    text = log_path.read_text()
    lines = []
    for line in text.splitlines():
        if line.strip():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return text, lines


def graphql(url: str, token: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/graphql", json={"query": PROJECTIONS}, headers={"Authorization": f"Bearer {token}", **headers}, timeout=30, verify=client_ssl_context()
    )


def test_each_request_has_an_id_in_its_header_and_in_every_line_it_logs(tmp_path: Path, database_url: str) -> None:
    process, url, env, log_path = start(tmp_path, SUBLEDGER_DATABASE_URL=database_url)
    token = mint_token(env["SUBLEDGER_JWT_SECRET"], "ops-user", "auditor")
    try:
        given = graphql(url, token, **{"X-Request-ID": "proc-req-42"})
        assert given.status_code == 200 and "errors" not in given.json(), given.text
        assert given.headers["X-Request-ID"] == "proc-req-42"
        generated = [graphql(url, token).headers["X-Request-ID"] for _ in range(2)]
        assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated) and generated[0] != generated[1]
        # An id that is not sane (spaces, too long) is replaced, not written into the log.
        for bad in ("two words", "x" * 129):
            answered = graphql(url, token, **{"X-Request-ID": bad}).headers["X-Request-ID"]
            assert re.fullmatch(r"[0-9a-f]{32}", answered), answered
        # A request refused inside the app logs its own line (cron_refused) with its id.
        refused = httpx.post(f"{url}/cron/run", headers={"X-Request-ID": "cron-refused-7", "Authorization": "Bearer wrong-secret-123"}, verify=client_ssl_context())
        assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "cron-refused-7"
        missing = httpx.get(f"{url}/no/such/page?token=abc", headers={"X-Request-ID": "lost-1"}, verify=client_ssl_context())
        assert missing.status_code == 404 and missing.headers["X-Request-ID"] == "lost-1"
    finally:
        text, lines = stopped_lines(process, log_path)

    def of(rid: str) -> list[dict[str, Any]]:
        return [line for line in lines if line.get("request_id") == rid]

    [access] = of("proc-req-42")
    assert access["event"] == "http_request" and access["level"] == "info" and access["logger"] == "subledger.access"
    assert (access["method"], access["route"], access["status"]) == ("POST", "/graphql", 200)
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] > 0
    for rid in generated:
        assert [line["event"] for line in of(rid)] == ["http_request"]
    assert [(line["event"], line["level"]) for line in of("cron-refused-7")] == [("cron_refused", "warning"), ("http_request", "info")]
    assert of("cron-refused-7")[1]["status"] == 401
    [lost] = of("lost-1")
    assert (lost["route"], lost["path"], lost["status"]) == ("other", "/no/such/page", 404)
    # Probes are DEBUG: the startup's /healthz polls left no line at INFO.
    assert not [line for line in lines if line.get("route") == "/healthz"]
    # uvicorn's records are JSON with their fields: the values of its message as positional_args.
    [started] = [line for line in lines if line["logger"] == "uvicorn.error" and line["event"].startswith("Started server process")]
    assert started["positional_args"] == [process.pid] and started["level"] == "info" and "timestamp" in started
    assert not [line for line in lines if "color_message" in line]
    serving = next(line for line in lines if line["event"] == "serving")
    assert serving["url"].endswith("/graphql")
    # Never a header value or a secret.
    for secret in (token, "wrong-secret-123", env["SUBLEDGER_JWT_SECRET"], env["SUBLEDGER_CRON_SECRET"], "token=abc"):
        assert secret not in text


@pytest.mark.parametrize("level", ["debug", "WARNING"])
def test_the_log_level_is_honoured(tmp_path: Path, level: str) -> None:
    process, url, _, log_path = start(tmp_path, SUBLEDGER_LOG_LEVEL=level)
    try:
        assert httpx.get(f"{url}/healthz", headers={"X-Request-ID": "probe-1"}, verify=client_ssl_context()).status_code == 200
        assert httpx.post(f"{url}/cron/run", headers={"X-Request-ID": "cron-2"}, verify=client_ssl_context()).status_code == 401
    finally:
        _, lines = stopped_lines(process, log_path)
    levels = {line["level"] for line in lines}
    if level == "debug":
        [probe] = [line for line in lines if line.get("request_id") == "probe-1"]
        assert (probe["event"], probe["level"], probe["route"]) == ("http_request", "debug", "/healthz")
        assert {"debug", "info", "warning"} <= levels
    else:
        assert levels <= {"warning", "error", "critical"}, levels
        assert [line["event"] for line in lines if line.get("request_id") == "cron-2"] == ["cron_refused"]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"], ["projector"]])
@pytest.mark.parametrize(
    "variable, value", [("SUBLEDGER_LOG_LEVEL", "loud"), ("SUBLEDGER_DB_POOL_SIZE", "0"), ("SUBLEDGER_READ_POOL_SIZE", "many")]
)
def test_a_bad_log_level_or_pool_size_is_refused_in_one_line(tmp_path: Path, command: list[str], variable: str, value: str) -> None:
    env = {"SUBLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "SUBLEDGER_REDIS_URL": "redis://127.0.0.1:9/0",
           variable: value}
    done = run(env, *command)
    assert_refused(done, variable, env)
    assert not (tmp_path / "ledger.db").exists()
