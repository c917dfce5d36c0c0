"""docker-compose.yml read generically, to run its services as processes on this machine.

Where no container engine runs, tests/integration/test_compose_layout.py starts the same
commands the compose file runs, in the same order (depends_on), waits for each service's
healthcheck command to pass, and sends requests through the proxy. This module reads the
file: compose's variable interpolation (`${NAME}`, `${NAME:-default}`, `${NAME:?error}`),
the YAML anchors the file uses, each service's command, environment, healthcheck, replicas
and dependencies, and the start order. Nothing here knows the names of the services.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(Exception):
    """A required variable (`${NAME:?message}`) is unset: compose refuses the file the same way."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        given = env.get(name)
        empty = given is None or (given == "" and op is not None and op.startswith(":"))
        if op and op.endswith("-"):
            return arg if empty else str(given)
        if op and op.endswith("?"):
            if empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(given)
        return given or ""

    return VARIABLE.sub(one, value)


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    built: bool  # `build:` this repository's image
    command: tuple[str, ...]
    environment: dict[str, str]
    healthcheck: tuple[str, ...]  # argv; () when none
    depends_on: dict[str, str]  # service -> condition
    replicas: int
    ports: tuple[tuple[str, int], ...]  # (host side, container port)
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of the service's keys, as read


def healthcheck_argv(test: list[str] | str | None) -> tuple[str, ...]:
    if not test:
        return ()
    if isinstance(test, str):
        return ("sh", "-c", test)
    kind, *rest = test
    if kind == "CMD":
        return tuple(rest)
    if kind == "CMD-SHELL":
        return ("sh", "-c", " ".join(rest))
    return ()  # NONE


def load(path: Path, host_env: Mapping[str, str]) -> dict[str, Service]:
    """The file's services, in file order, with the host environment interpolated."""
    document = yaml.safe_load(path.read_text())
    services = {}
    for name, raw in document["services"].items():
        environment: dict[str, str] = {}
        for key, value in (raw.get("environment") or {}).items():
            if value is None:  # a bare name: taken from the host environment, else left unset
                if key in host_env:
                    environment[key] = host_env[key]
                continue
            environment[key] = interpolate(str(value), host_env)
        depends = raw.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dependency: {"condition": "service_started"} for dependency in depends}
        ports = []
        for mapping in raw.get("ports") or []:
            host, _, container = interpolate(str(mapping), host_env).rpartition(":")
            ports.append((host, int(container)))
        command = raw.get("command") or ()
        services[name] = Service(
            name=name,
            image=raw.get("image"),
            built="build" in raw,
            command=tuple(interpolate(str(arg), host_env) for arg in ([command] if isinstance(command, str) else command)),
            environment=environment,
            healthcheck=healthcheck_argv((raw.get("healthcheck") or {}).get("test")),
            depends_on={dependency: spec.get("condition", "service_started") for dependency, spec in depends.items()},
            replicas=int((raw.get("deploy") or {}).get("replicas", 1)),
            ports=tuple(ports),
            extra={k: v for k, v in raw.items() if k not in ("environment", "depends_on", "ports", "command")},
        )
    return services


def start_order(services: Mapping[str, Service]) -> list[str]:
    """Every service after the ones it depends on; otherwise in file order (as compose starts them)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"depends_on cycle through {name}")
        visiting.add(name)
        for dependency in services[name].depends_on:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


def completed_dependencies(services: Mapping[str, Service]) -> set[str]:
    """Services another one waits for to finish (`condition: service_completed_successfully`): one-off steps."""
    return {dependency for service in services.values() for dependency, condition in service.depends_on.items()
            if condition == "service_completed_successfully"}
