"""docker-compose.yml's services as processes on this machine (tests/integration/test_compose_layout.py).

Each service the file builds runs its own command; the nginx service runs the local nginx with
the same template rendered as the official image renders it; PostgreSQL and Redis are the test
suite's servers. Every value of the file is mapped to this machine (`Layout.local`): a URL of
an external service becomes the test server's, `service:port` becomes 127.0.0.1 and that
service's local port, a service's own container ports become free local ports. Services start
in the file's order, one-off steps run to completion, and each service's own healthcheck
command must pass before the next one starts; `stop` ends them in reverse order.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from benchmarks.proxy import main_conf, nginx_binary
from tests.compose_local import Service

ROOT = Path(__file__).resolve().parents[1]
#: The images whose servers this suite already runs (scripts/test), by image name.
EXTERNAL_IMAGES = ("postgres", "redis")


@dataclass
class Layout:
    services: dict[str, Service]
    order: list[str]
    env: dict[str, str]  # the environment of every process (the compose one is added per service)
    external: dict[str, str]  # service -> the local URL standing in for it
    ports: dict[str, dict[int, int]] = field(default_factory=dict)  # service -> container port -> local port
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    logs: Path = Path()
    skipped: dict[str, str] = field(default_factory=dict)  # service -> why it was not started

    def url(self, service: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[service][container_port]}"

    def local(self, service: str, value: str) -> str:
        """A value of the compose file as it reads on this machine."""
        parsed = urlparse(value) if "://" in value else None
        if parsed and parsed.hostname in self.external:
            return self.external[parsed.hostname]
        for other, mapped in self.ports.items():
            for container, port in mapped.items():
                value = re.sub(rf"\b{re.escape(other)}:{container}\b", f"127.0.0.1:{port}", value)
        for container, port in self.ports.get(service, {}).items():
            value = re.sub(rf"(?<![\d.]){container}(?!\d)", str(port), value)
        return value.replace("0.0.0.0", "127.0.0.1")

    def environment(self, service: Service) -> dict[str, str]:
        return {**self.env, **{key: self.local(service.name, value) for key, value in service.environment.items()}}

    def log(self, name: str) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in sorted(self.logs.glob(f"{name}*.log")))


def container_ports(service: Service) -> list[int]:
    """The ports a service listens on in its container: published ones and `--port N`."""
    found = [container for _, container in service.ports]
    args = list(service.command)
    found += [int(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "--port"]
    return sorted(set(found))


def render_nginx(layout: Layout, service: Service, directory: Path) -> list[str]:
    """The official image's start: each template of /etc/nginx/templates rendered with the
    container's environment (envsubst of the variables set) into conf.d; then nginx."""
    [templates] = [ROOT / volume.split(":")[0] for volume in service.extra.get("volumes", [])
                   if volume.split(":")[1] == "/etc/nginx/templates"]
    env = layout.environment(service)
    conf_d = directory / "conf.d"
    conf_d.mkdir(parents=True)
    for template in templates.glob("*.template"):
        text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m[1], m[0]), template.read_text())
        (conf_d / template.name.removesuffix(".template")).write_text(text)
    (directory / "nginx.conf").write_text(main_conf(directory, f"{conf_d}/*.conf"))
    return [nginx_binary() or "nginx", "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]


def healthcheck_deadline(service: Service) -> float:
    check = service.extra.get("healthcheck") or {}
    seconds = {"s": 1, "m": 60}
    def duration(value: str | None, default: float) -> float:
        if not value:
            return default
        return sum(float(n) * seconds[u] for n, u in re.findall(r"(\d+)([sm])", value))
    # What compose allows before it calls the service unhealthy, and at least 2 minutes on a busy machine.
    allowed = duration(check.get("start_period"), 0) + check.get("retries", 3) * duration(check.get("interval"), 30)
    return time.monotonic() + max(120.0, allowed)


def wait_healthy(layout: Layout, service: Service, started: list[subprocess.Popen[bytes]]) -> None:
    argv = [layout.local(service.name, arg) for arg in service.healthcheck]
    deadline = healthcheck_deadline(service)
    while True:
        done = subprocess.run(argv, env=layout.environment(service), cwd=layout.logs, capture_output=True, timeout=60)
        if done.returncode == 0:
            return
        dead = [p for p in started if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            pytest.fail(f"{service.name}: healthcheck {argv} did not pass (exit {done.returncode}: "
                        f"{done.stdout.decode()[-500:]} {done.stderr.decode()[-500:]}); "
                        f"{'exited' if dead else 'still running'}; log:\n{layout.log(service.name)}")
        time.sleep(1)


def start(layout: Layout, name: str, one_off: set[str]) -> None:
    service = layout.services[name]
    if service.image and service.image.split(":")[0].split("/")[-1] in EXTERNAL_IMAGES:
        return  # the test's own server answers for it (checked when the layout is made)
    if service.image and service.image.split(":")[0].split("/")[-1] == "nginx":
        if not nginx_binary():
            layout.skipped[name] = "nginx is not installed (scripts/test installs it with apt-get where it can)"
            return
        argv = render_nginx(layout, service, layout.logs / name)
    elif service.built:
        argv = [layout.local(name, arg) for arg in service.command]
    else:
        raise AssertionError(f"{name}: no way to run image {service.image} as a process")
    started = []
    for replica in range(1, service.replicas + 1):
        log = open(layout.logs / f"{name}-{replica}.log", "wb")
        process = subprocess.Popen(argv, env=layout.environment(service), cwd=layout.logs, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        layout.processes.append((name, process))
        started.append(process)
    if name in one_off:
        for process in started:
            assert process.wait(timeout=600) == 0, f"{name} failed:\n{layout.log(name)}"
    elif service.healthcheck:
        wait_healthy(layout, service, started)


def stop(layout: Layout) -> None:
    """SIGTERM in reverse start order (as `docker compose down`), SIGKILL after the grace."""
    for _, process in reversed(layout.processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for _, process in reversed(layout.processes):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
