"""`subledger bench graphql`: spendPoints mutations/s over HTTP (uvicorn, one worker)
driven by wrk, with p50/p99 latency, against the same command called in process,
both on the configured database in the same run (DESIGN.md, Performance).

wrk (Debian package `wrk`) is the load generator: a Python client would measure
itself (DESIGN.md, Known costs)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

import httpx

from benchmarks.common import emit, run_threads
from schema.auth import mint_token
from subledger.app import build
from subledger.settings import Settings

SECRET = "bench-secret-bench-secret-bench-secret"
# Each wrk thread numbers its own requests, so every spend has a new serviceId, and
# takes the users' tokens in turn (one wallet per connection, as many users would).
LUA = r"""
local tokens = {%s}
local counter = 0
setup = function(thread) thread:set("tid", math.random(1, 1e9)) end
request = function()
  counter = counter + 1
  local body = '{"query":"mutation($s: String!) { spendPoints(input: {amount: 1, serviceId: $s}) { remainingBalance } }",'
    .. '"variables":{"s":"' .. tostring(tid) .. '-' .. counter .. '"}}'
  local token = tokens[(counter %% #tokens) + 1]
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
"""


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def over_http(database_url: str, users: list[str], seconds: float, connections: int) -> dict[str, float]:
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA % ", ".join(f'"{mint_token(SECRET, user, "user")}"' for user in users))
        done = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = done.stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _seconds(re.search(r"50%\s+(\S+)", out).group(1)) * 1000,
        "p99_ms": _seconds(re.search(r"99%\s+(\S+)", out).group(1)) * 1000,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def in_process(settings: Settings, users: list[str], seconds: float, callers: int) -> float:
    built = build(settings)
    now = datetime.now(timezone.utc)
    try:
        done, elapsed = run_threads(
            callers,
            seconds,
            lambda i: lambda: built.ledger.wallets.spend_points(
                users[i % len(users)], service=None, amount=1, service_id=uuid.uuid4().hex, now=now
            ),
        )
    finally:
        built.ledger.close()
    return done / elapsed


def run(database_url: str, seconds: float = 10.0, connections: int = 16) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench graphql needs wrk (apt-get install wrk)")
    settings = Settings(database_url=database_url, jwt_secret=SECRET)
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(connections)]
    built = build(settings)
    for user in users:
        built.ledger.wallets.adjust_points(user, 100_000_000, "bench", now=datetime.now(timezone.utc), actor="bench")
    built.ledger.close()
    http = over_http(database_url, users, seconds, connections)
    direct = in_process(settings, users, seconds, connections)
    emit(
        "graphql",
        database=database_url.split(":", 1)[0],
        connections=connections,
        seconds=seconds,
        http_mutations_per_s=http["requests_per_s"],
        p50_ms=round(http["p50_ms"], 2),
        p99_ms=round(http["p99_ms"], 2),
        non_2xx=http["non_2xx"],
        in_process_commands_per_s=round(direct, 1),
        ratio=round(http["requests_per_s"] / direct, 3),
    )
