"""docker-compose.yml, read as YAML (no container engine needed): every long-running service
has a healthcheck, the worker's is `subledger worker --check` and the projector's
`subledger projector --check`; the worker's stop grace period covers its 60 s job completion
wait; no password is written in the file; only the proxy publishes a port, a variable; and the
layout's pools fit the PostgreSQL it starts (docs/deployment.md#connections).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from subledger.settings import Settings
from workers.arq_worker import worker_settings

ROOT = Path(__file__).resolve().parents[2]
#: Connections left to psql, a backup and one-off `subledger` commands.
HEADROOM = 20
VARIABLE = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?::?[-?](?P<default>[^}]*))?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def seconds(duration: str) -> float:
    """A compose duration ("90s", "1m30s", "2m") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def default_of(value: str) -> str:
    """The value compose uses when the variable is unset (`${NAME:-default}`)."""
    match = VARIABLE.match(value)
    return match["default"] if match and match["default"] is not None else value


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker", "projector", "proxy"}
    for name, service in services.items():
        if name == "migrate":  # runs once and exits (test below)
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "subledger", "worker", "--check"]
    assert services["projector"]["healthcheck"]["test"] == ["CMD", "subledger", "projector", "--check"]


def test_the_worker_gets_time_to_finish_its_charges(compose: dict[str, Any]) -> None:
    wait = worker_settings(Settings(redis_url="redis://localhost:6379/0")).job_completion_wait
    assert wait >= 60
    grace = seconds(compose["services"]["worker"]["stop_grace_period"])
    assert grace >= wait + 10, (grace, wait)  # and time to close its pools after the wait


def test_no_password_is_written_in_the_file(compose: dict[str, Any]) -> None:
    postgres_password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert VARIABLE.match(postgres_password) and "?" in postgres_password, postgres_password  # required, no default
    url = compose["x-subledger-env"]["SUBLEDGER_DATABASE_URL"]
    password = re.match(r"postgresql://[^:]+:(?P<password>.+)@[^@]+$", url)["password"]
    assert password == postgres_password, "the URL's password is the same variable"
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "KEY")) and value:
                assert VARIABLE.match(str(value)), f"{name}: {key} is written in the file"


def test_only_the_proxy_publishes_a_port_and_its_host_port_is_configurable(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert [name for name, service in services.items() if service.get("ports")] == ["proxy"]
    [mapping] = services["proxy"]["ports"]
    host, _, container = mapping.rpartition(":")
    assert container == services["proxy"]["environment"]["SUBLEDGER_PROXY_LISTEN"] and VARIABLE.match(host), mapping
    assert services["proxy"]["environment"]["SUBLEDGER_PROXY_UPSTREAM"] == "api:8000"  # every replica, by name
    [volume] = services["proxy"]["volumes"]
    source, target, _ = volume.split(":")
    assert target == "/etc/nginx/templates" and (ROOT / source / "default.conf.template").is_file()


def test_the_layout_fits_the_postgres_it_starts(compose: dict[str, Any]) -> None:
    command = compose["services"]["postgres"]["command"]
    max_connections = int(next(arg.split("=")[1] for arg in command if arg.startswith("max_connections=")))
    env = compose["x-subledger-env"]
    pools = {name: int(default_of(env[f"SUBLEDGER_{name.upper()}"])) for name in ("db_pool_size", "read_pool_size")}
    # The file's defaults are the settings' defaults: a process started without them fits too.
    assert pools == {name: Settings.model_fields[name].default for name in pools}
    services = compose["services"]
    processes = sum(services[name].get("deploy", {}).get("replicas", 1) for name in ("api", "worker", "projector"))
    assert processes == 4  # one API, two workers, one projector
    # The worker running the 00:00 charge run starts the other charge processes (workers/charge_processes.py).
    processes += int(default_of(env["SUBLEDGER_CHARGE_PROCESSES"])) - 1
    assert processes == 5
    assert processes * sum(pools.values()) + HEADROOM <= max_connections


def test_the_services_start_after_the_migration_succeeded(compose: dict[str, Any]) -> None:
    """Production processes only check the database (docs/upgrading.md): `migrate` runs first, once."""
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["subledger", "migrate"] and migrate["restart"] == "no"
    assert migrate["environment"]["SUBLEDGER_ENV"] == "production"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "projector"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
