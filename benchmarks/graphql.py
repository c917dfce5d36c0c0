"""`subledger bench graphql`: spendPoints mutations/s over HTTP against the same command
called in process, both on the configured database in the same run
(docs/performance.md), in the production layout: the API process(es) and a
`subledger projector` process following the ledger into the read models.

Both halves are the same work: the same users (200 by default, taken in turn by
each wrk thread and in-process caller from its own starting point, so they do
not walk the wallets in lockstep), a new `serviceId` for every spend, and the
same projector process following both. After each half the bench waits for the
projector to reach the ledger's head and reports how long that took (its lag
when the load stopped), and the projector's CPU per event written. CPU seconds
per spend are read from /proc for every process of the layout: the API
process(es), the projector, the bench's own threads (the in-process half), wrk
(as an ended child), and PostgreSQL's server processes when they run here.

wrk (Debian package `wrk`) is the load generator: a Python client would measure
itself. With `--api-processes N` (N > 1), N `subledger serve` processes run behind
the compose layout's proxy: nginx with the repository's template
(`benchmarks/proxy.py`), which sends every request of one caller to the same
process; its CPU is reported as `proxy`. `--front reuse-port` instead has them
share one port through SO_REUSEPORT (`serve --reuse-port`), where the kernel
spreads wrk's connections over them by their addresses, whoever the caller.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from benchmarks import proxy
from benchmarks.common import emit, run_threads
from benchmarks.cpu import CpuMeter, postgres_pids
from gateways.tls import client_ssl_context
from schema.auth import mint_token
from subledger.app import build
from subledger.settings import Settings

SECRET = "bench-secret-bench-secret-bench-secret"
# Each wrk thread starts at its own random user and numbers its own requests, so every
# spend has a new serviceId and the threads do not meet on the same wallets.
LUA = r"""
local tokens = {%s}
local counter = 0
local offset = 0
setup = function(thread) thread:set("tid", math.random(1, 1e9)) end
init = function(args) math.randomseed(tid) offset = math.random(0, #tokens - 1) end
request = function()
  counter = counter + 1
  local body = '{"query":"mutation($s: String!) { spendPoints(input: {amount: 1, serviceId: $s}) { remainingBalance } }",'
    .. '"variables":{"s":"' .. tostring(tid) .. '-' .. counter .. '"}}'
  local token = tokens[((counter + offset) %% #tokens) + 1]
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
"""


@dataclass
class Layout:
    """The processes of the production layout the bench started."""

    apis: list[subprocess.Popen[bytes]]
    projector: subprocess.Popen[bytes]
    port: int
    #: nginx in front of the API processes (None: wrk reaches them directly).
    proxy: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        processes = [*([self.proxy] if self.proxy else []), *self.apis, self.projector]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _seconds(text: str) -> float:
    """A duration as wrk prints it: 812.00us, 41.33ms, 1.20s, 1.01m, 1.00h."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if found is None:
        raise ValueError(f"wrk printed a duration this bench cannot read: {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def start_layout(database_url: str, api_processes: int, front: proxy.Front = proxy.Front.NGINX) -> Layout:
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": SECRET,
        "SUBLEDGER_PROJECTIONS_IN_PROCESS": "false",
    }
    quiet: dict[str, Any] = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proxied = api_processes > 1 and front is proxy.Front.NGINX
    shared = api_processes > 1 and not proxied
    # Behind nginx each process has a port of its own (the next ones after the proxy's).
    ports = [port + 1 + i for i in range(api_processes)] if proxied else [port] * api_processes
    serve = [sys.executable, "-m", "subledger.cli", "serve", *(["--reuse-port"] if shared else [])]
    projector = subprocess.Popen([sys.executable, "-m", "subledger.cli", "projector"], **quiet)
    apis = [subprocess.Popen([*serve, "--port", str(api_port)], **quiet) for api_port in ports]
    layout = Layout(apis, projector, port)
    if not _healthy([*dict.fromkeys(ports)], [*apis, projector]):
        layout.stop()
        raise SystemExit("the API or the projector did not start")
    if proxied:
        layout.proxy = proxy.start(ports, port)
        if not _healthy([port], [layout.proxy]):
            layout.stop()
            raise SystemExit("nginx did not start in front of the API processes")
    else:
        time.sleep(1.0 * api_processes)  # every process of the shared port has bound it
    return layout


def _healthy(ports: list[int], processes: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> bool:
    """Whether /healthz answers 200 on every port before `timeout`, while `processes` run."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, verify=client_ssl_context()).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                return False
            time.sleep(0.2)
    return True


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_load(port: int, users: list[str], seconds: float, connections: int) -> dict[str, float]:
    """The figures of one wrk run against the API."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % ", ".join(f'"{mint_token(SECRET, user, "user")}"' for user in users))
    wrk = subprocess.Popen(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script.name,
         f"http://127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = wrk.communicate()
    os.unlink(script.name)
    if wrk.returncode != 0:
        raise SystemExit(f"wrk failed: {err.strip()}")
    return wrk_figures(out)


def wrk_figures(out: str) -> dict[str, float]:
    """Requests, rate, p50/p99 and errors from the text `wrk --latency` prints."""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # The percentile lines of --latency only: a "+/- Stdev" column ending in "50%" is no percentile.
        "p50_ms": _seconds(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)) * 1000,
        "p99_ms": _seconds(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)) * 1000,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def in_process(built: Any, users: list[str], seconds: float, callers: int) -> tuple[int, float]:
    """(spends, seconds): `callers` threads, each from its own starting user."""
    now = datetime.now(timezone.utc)

    def make_step(i: int) -> Any:
        turn = iter(range(i * len(users) // callers, 1 << 62))
        return lambda: built.ledger.wallets.spend_points(
            users[next(turn) % len(users)], service=None, amount=1, service_id=uuid.uuid4().hex, now=now
        )

    return run_threads(callers, seconds, make_step)


def catch_up_seconds(built: Any, timeout: float = 300.0) -> float:
    """Seconds until every projection of the projector process reached the ledger's head."""
    began = time.perf_counter()
    while any(row["lag"] > 0 for row in built.read_models.status()):
        if time.perf_counter() - began > timeout:
            raise SystemExit(f"the projector did not catch up in {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - began


def run(database_url: str, seconds: float = 10.0, connections: int = 16, users_count: int = 200,
        api_processes: int = 1, front: proxy.Front = proxy.Front.NGINX) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench graphql needs wrk (apt-get install wrk)")
    settings = Settings(database_url=database_url, jwt_secret=SECRET, projections_in_process=False)
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(users_count)]
    built = build(settings)  # the bench's own handle: setup, the in-process half, projector status
    layout = None
    try:
        for user in users:
            built.ledger.wallets.adjust_points(user, 100_000_000, "bench", now=datetime.now(timezone.utc), actor="bench")
        layout = start_layout(database_url, api_processes, front)
        catch_up_seconds(built)
        apis, projector = [p.pid for p in layout.apis], [layout.projector.pid]
        groups = {"api": lambda: apis, "projector": lambda: projector}
        if layout.proxy is not None:
            groups["proxy"] = lambda: proxy.process_tree(layout.proxy.pid)
        if built.view_db.kind == "postgres":
            groups["postgres"] = postgres_pids

        head = built.ledger.recorder.max_notification_id
        # Each API process on its own too: the kernel spreads connections over a shared port
        # by their addresses, not by how busy each process is.
        each_api, metered_from = CpuMeter({str(pid): (lambda pid=pid: [pid]) for pid in apis}), time.perf_counter()
        meter, children, start = CpuMeter(groups), _children_cpu(), head()
        http = wrk_load(layout.port, users, seconds, connections)
        http_lag = catch_up_seconds(built)
        http_cpu, http_events = {**meter.read(), "wrk": _children_cpu() - children}, head() - start
        http_each_api, metered = each_api.read(), time.perf_counter() - metered_from

        meter, start = CpuMeter({**groups, "bench": lambda: [os.getpid()]}), head()
        done, elapsed = in_process(built, users, seconds, connections)
        direct_lag = catch_up_seconds(built)
        direct_cpu, direct_events = meter.read(), head() - start
    finally:
        if layout is not None:
            layout.stop()
        built.ledger.close()
        built.view_db.close()
    direct = done / elapsed

    def per_spend(cpu: dict[str, float], spends: float) -> dict[str, float]:
        return {name: round(seconds * 1000 / spends, 3) for name, seconds in cpu.items() if seconds > 0}

    emit(
        "graphql",
        database=built.view_db.kind,
        layout=f"{api_processes} API process(es) + 1 projector process",
        front=("nginx" if front is proxy.Front.NGINX else "SO_REUSEPORT") if api_processes > 1 else "none",
        users=users_count,
        connections=connections,
        seconds=seconds,
        http_mutations_per_s=http["requests_per_s"],
        p50_ms=round(http["p50_ms"], 2),
        p99_ms=round(http["p99_ms"], 2),
        non_2xx=http["non_2xx"],
        socket_errors=http["socket_errors"],
        http_projector_catch_up_s=round(http_lag, 2),
        http_cpu_ms_per_spend=per_spend(http_cpu, http["requests"]),
        # CPU seconds per wall second over the HTTP half and the catch-up after it, per API
        # process (1.0 = one core busy).
        http_api_cores_each=[round(spent / metered, 2) for spent in http_each_api.values()],
        http_events=http_events,
        http_projector_cpu_ms_per_event=round(http_cpu["projector"] * 1000 / max(http_events, 1), 3),
        in_process_commands_per_s=round(direct, 1),
        in_process_projector_catch_up_s=round(direct_lag, 2),
        in_process_cpu_ms_per_spend=per_spend(direct_cpu, done),
        in_process_events=direct_events,
        in_process_projector_cpu_ms_per_event=round(direct_cpu["projector"] * 1000 / max(direct_events, 1), 3),
        ratio=round(http["requests_per_s"] / direct, 3),
    )
