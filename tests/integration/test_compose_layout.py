"""docker-compose.yml, run. With the docker CLI's compose plugin, `docker compose config -q`
validates the file (else the standalone docker-compose); with a running container engine, the image is built, the layout started and
the README's GraphQL session run against it through the proxy. Without an engine (this suite's
usual case) the same commands the compose file runs are started as processes on this machine,
in the same order (depends_on), each waited for until its own healthcheck command passes, with
the compose environment mapped to local addresses: PostgreSQL and Redis are the test servers,
each service's container ports are free local ports, the proxy is nginx with the same
deploy/nginx template, and Toss is the sandbox gateway server (a look-alike that accepts the
live key the compose file requires). Then the README's session runs through the proxy.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from gateways.sandbox_app import create_app
from gateways.sandbox_engine import SandboxEngine
from gateways.tls import client_ssl_context
from subledger.master_keys import generate_key
from subledger.storage import Database
from tests.compose_local import MissingVariable, completed_dependencies, interpolate, load, start_order
from tests.compose_processes import Layout, container_ports, start, stop
from tests.conftest import POSTGRES_URL, REDIS_URL, _require
from tests.integration.test_production_mode import free_port
from tests.readme_session import run_readme_session
from tests.servers import serve_asgi

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
#: What an operator exports before `docker compose up` (docs/deployment.md#starting-it).
HOST_ENV = {
    "SUBLEDGER_DB_PASSWORD": secrets.token_hex(24),
    "SUBLEDGER_JWT_SECRET": secrets.token_urlsafe(48),
    "SUBLEDGER_TOSS_SECRET_KEY": "live_sk_" + secrets.token_hex(12),
    "SUBLEDGER_MASTER_KEY": generate_key(),
}


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str] | None:
    if not shutil.which("docker"):
        return None
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **HOST_ENV}, cwd=ROOT)


def compose_plugin() -> bool:
    done = docker("compose", "version")
    return bool(done and done.returncode == 0)


def engine_running() -> bool:
    done = docker("info", "--format", "{{.ServerVersion}}")
    return bool(done and done.returncode == 0 and done.stdout.strip())

# --- reading the file --------------------------------------------------------------------

def test_interpolation_is_composes() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET} ${EMPTY:-d} ${EMPTY-d} ${UNSET:-d} $${SET}", env) == "v d  d ${SET}"
    with pytest.raises(MissingVariable, match="UNSET: set it"):
        interpolate("${UNSET:?set it}", env)
    with pytest.raises(MissingVariable):
        load(COMPOSE, {})  # the file's required secrets, as compose refuses them


def test_the_order_follows_depends_on_and_picks_up_one_off_steps() -> None:
    """The file's `migrate` step, which the services wait for, is run to completion before them:
    the order and the one-off set come from the file alone."""
    services = load(COMPOSE, HOST_ENV)
    built = [name for name, service in services.items() if service.built and name != "migrate"]
    order = start_order(services)
    assert order.index("postgres") < order.index("migrate") < min(order.index(name) for name in built)
    assert order.index("api") < order.index("worker") and order.index("api") < order.index("proxy")
    assert completed_dependencies(services) == {"migrate"}
    assert services["worker"].replicas == 2 and services["migrate"].command == ("subledger", "migrate")


# --- a container engine, when there is one ----------------------------------------------

def test_docker_compose_config_accepts_the_file() -> None:
    """The compose tool's own validation (schema, interpolation, references). The docker CLI's
    compose plugin where it is installed; else the standalone `docker-compose` (Debian's package,
    which scripts/services.sh installs where it can): both read the file without a daemon."""
    env = {**os.environ, **HOST_ENV}
    if compose_plugin():
        argv = ["docker", "compose", "config", "-q"]
    elif shutil.which("docker-compose"):
        argv = ["docker-compose", "config", "-q"]
    else:
        pytest.skip("neither the docker CLI's compose plugin nor docker-compose is installed: the file is not validated")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    # And it refuses a file with a required secret unset, as the docs say.
    unset = {k: v for k, v in env.items() if k != "SUBLEDGER_JWT_SECRET"}
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=unset, cwd=ROOT)
    assert refused.returncode != 0 and "SUBLEDGER_JWT_SECRET" in refused.stderr, refused.stderr


def test_the_image_runs_the_readme_session(tmp_path: Path) -> None:
    if not engine_running():
        pytest.skip("no container engine runs here: the image is not built (the processes below run the same commands)")
    # The README's session is the sandbox's (its test card): the image's services run it with
    # the sandbox gateway in development mode, by an override file; everything else is the file's.
    built = [name for name, service in load(COMPOSE, HOST_ENV).items() if service.built]
    override = tmp_path / "sandbox.override.yml"
    override.write_text(json.dumps({"services": {name: {"environment": {
        "SUBLEDGER_ENV": "development", "SUBLEDGER_GATEWAY": "sandbox"}} for name in built}}))
    port = str(free_port())
    project = ["compose", "-f", str(COMPOSE), "-f", str(override), "-p", f"subledger-test-{uuid.uuid4().hex[:6]}"]
    os.environ["SUBLEDGER_API_PORT"] = port
    try:
        up = docker(*project, "up", "-d", "--build", "--wait", timeout=1800)
        assert up is not None and up.returncode == 0, up and up.stderr
        run_readme_session(f"http://127.0.0.1:{port}", HOST_ENV["SUBLEDGER_JWT_SECRET"], "SANDBOX")
    finally:
        docker(*project, "down", "-v", timeout=300)
        os.environ.pop("SUBLEDGER_API_PORT", None)

# --- the same commands as processes -----------------------------------------------------
class LiveKeyLookAlike:
    """The sandbox gateway's app, answering the live key the production layout must be given:
    the key is read as the sandbox's test key (the sandbox refuses live keys by design)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import base64

        if scope["type"] == "http":
            headers = []
            for name, value in scope["headers"]:
                if name == b"authorization" and value.startswith(b"Basic "):
                    secret = base64.b64decode(value[6:]).replace(b"live_sk_", b"test_sk_", 1)
                    value = b"Basic " + base64.b64encode(secret)
                headers.append((name, value))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)

@pytest.fixture(scope="module")
def engine() -> SandboxEngine:
    return SandboxEngine()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, engine: SandboxEngine) -> Iterator[Layout]:
    postgres = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    redis_url = _require(REDIS_URL, "SUBLEDGER_TEST_REDIS_URL")
    schema = f"compose_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(Database.from_url(postgres).psycopg_conninfo()) as conn:
        conn.execute("SELECT 1")
    redis.Redis.from_url(redis_url).ping()
    services = load(COMPOSE, HOST_ENV)
    work = tmp_path_factory.mktemp("compose")
    (work / "tmp").mkdir()
    external = {}
    for name, service in services.items():
        kind = (service.image or "").split(":")[0].split("/")[-1]
        if kind == "postgres":
            external[name] = f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"
        elif kind == "redis":
            external[name] = redis_url.rsplit("/", 1)[0] + "/12"  # the same server, a database of its own
    with serve_asgi(LiveKeyLookAlike(create_app(engine))) as toss:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
        env.update({"PATH": f"{BIN}:{env.get('PATH', '')}", "TMPDIR": str(work / "tmp"),
                    # Not in the file: the live Toss API, here its look-alike.
                    "SUBLEDGER_TOSS_BASE_URL": toss})
        layout = Layout(services, start_order(services), env, external, logs=work)
        for name, service in services.items():
            if name not in external:
                layout.ports[name] = {port: free_port() for port in container_ports(service)}
        one_off = completed_dependencies(services)
        try:
            for name in layout.order:
                start(layout, name, one_off)
            yield layout
        finally:
            stop(layout)



def proxy_of(layout: Layout) -> str:
    """The base URL of the service that publishes a port (the proxy), as this machine reaches it."""
    [(name, service)] = [(n, s) for n, s in layout.services.items() if s.ports]
    if name in layout.skipped:
        pytest.skip(f"{name} not started: {layout.skipped[name]}")
    [(_, container)] = service.ports
    return layout.url(name, container)


def api_of(layout: Layout) -> str:
    [api] = [name for name, service in layout.services.items() if service.built and "serve" in service.command]
    [port] = layout.ports[api]
    return layout.url(api, port)


def entry_of(layout: Layout) -> str:
    """Where a client sends requests: the proxy, or the API itself when nginx could not run here."""
    published = [n for n, s in layout.services.items() if s.ports]
    return api_of(layout) if set(published) & set(layout.skipped) else proxy_of(layout)


def test_every_service_started_in_order_and_is_healthy(layout: Layout) -> None:
    position = {name: i for i, name in enumerate(layout.order)}
    for name, service in layout.services.items():
        assert all(position[dependency] < position[name] for dependency in service.depends_on), name
    running = {name for name, process in layout.processes if process.poll() is None}
    expected = {name for name in layout.services if name not in layout.external and name not in layout.skipped}
    assert running >= expected - completed_dependencies(layout.services), layout.processes
    replicas = {name: sum(1 for n, _ in layout.processes if n == name) for name in running}
    assert all(replicas[name] == layout.services[name].replicas for name in running), replicas


def test_the_readme_session_through_the_proxy(layout: Layout, engine: SandboxEngine) -> None:
    seen = run_readme_session(entry_of(layout), HOST_ENV["SUBLEDGER_JWT_SECRET"], "TOSS")
    # Both sides of the money: the gateway's own record and the ledger's.
    [charge] = [c for c in engine.charges() if c["amount"] == 5000]
    reply = httpx.post(f"{entry_of(layout)}/graphql", headers={"Authorization": f"Bearer {seen['token']}"},
                       json={"query": "{ paymentsPage(first: 5) { items { amount status provider } } }"}, timeout=30, verify=client_ssl_context())
    assert reply.json()["data"]["paymentsPage"]["items"] == [{"amount": 5000, "status": "SUCCEEDED",
                                                               "provider": "TOSS"}], (reply.text, charge)


def test_the_proxy_passes_request_ids_and_hides_metrics(layout: Layout) -> None:
    proxy = proxy_of(layout)
    given = "req-" + uuid.uuid4().hex
    answer = httpx.get(f"{proxy}/healthz", headers={"X-Request-ID": given}, timeout=10, verify=client_ssl_context())
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == given
    made = httpx.get(f"{proxy}/healthz", timeout=10, verify=client_ssl_context()).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made), made  # nginx's own id, kept by the API
    assert httpx.get(f"{proxy}/metrics", timeout=10, verify=client_ssl_context()).status_code == 404
    assert httpx.get(f"{api_of(layout)}/metrics", timeout=10, verify=client_ssl_context()).status_code == 200  # scraped inside


def test_doctor_in_the_api_service_finds_everything_ok(layout: Layout) -> None:
    """`docker compose exec api subledger doctor`, as docs/operations.md runs it: the api's environment."""
    [api] = [name for name, service in layout.services.items() if service.built and "serve" in service.command]
    done = subprocess.run(["subledger", "doctor"], env=layout.environment(layout.services[api]), cwd=layout.logs,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {line[6:21].strip(): line[:4].strip() for line in done.stdout.splitlines()}
    assert checks == {"configuration": "OK", "database": "OK", "redis": "OK", "workers": "OK",
                      "gateway toss": "OK", "time zone": "OK", "clock": "OK"}, done.stdout
    for secret in HOST_ENV.values():
        assert secret not in done.stdout + done.stderr
