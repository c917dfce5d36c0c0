"""`subledger serve --reuse-port`: several API processes on one port (the layout `bench graphql
--api-processes N` measures). Each process is shown to serve that port on its own: with both up,
either one may be stopped and the port still answers from the other, and the commands each one
ran while alone are all in the one ledger."""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks import gql_client as q
from benchmarks.deployment import Deployment, Process, free_port, make_workdir, service_env, wait_until
from benchmarks.gql_client import GraphQL
from gateways.tls import client_ssl_context


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = make_workdir("subledger-reuse-port.")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _listening(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds a listening TCP socket on `port` (from /proc). An HTTP
    probe cannot tell: with the port shared, the other process may answer it."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True  # state 0A is LISTEN
    return False


def _serve(deployment: Deployment, port: int, *flags: str) -> Process:
    process = deployment._add(["serve", "--port", str(port), *flags], "serve")
    assert process.popen is not None
    pid = process.popen.pid
    wait_until(lambda: _listening(pid, port) or not process.alive(), 120, f"serve on port {port}", interval=0.2)
    if not process.alive():
        raise RuntimeError(f"serve exited with {process.popen.returncode}: {process.log()[-300:]}")
    process.url, process.port = f"http://127.0.0.1:{port}", port
    return process


def _buy(gql: GraphQL, user: str, method: str, key: str) -> None:
    answer = gql.call(q.PURCHASE, {"p": "starter", "m": method, "k": key}, user=user)
    assert answer.ok, answer.body


def test_two_serve_processes_share_one_port_and_one_ledger(postgres_url: str, workdir: Path) -> None:
    deployment = Deployment(workdir, service_env(postgres_url))
    port = free_port()
    try:
        first = _serve(deployment, port, "--reuse-port")
        second = _serve(deployment, port, "--reuse-port")  # binding the taken port would fail without it
        assert first.alive() and second.alive()
        user = f"reuse-{uuid.uuid4().hex[:8]}"
        gql = GraphQL(first.url)
        registered = gql.call(q.REGISTER, {"k": q.GOOD_CARD, "c": f"cust-{user}"}, user=user)
        assert registered.ok, registered.body
        method = registered.data["registerPaymentMethod"]["id"]

        first.stop()
        _buy(GraphQL(second.url), user, method, "while-first-stopped")
        restarted = _serve(deployment, port, "--reuse-port")
        second.stop()
        _buy(GraphQL(restarted.url), user, method, "while-second-stopped")

        wallet = GraphQL(restarted.url).call(q.WALLET, {}, user=user)
        assert wallet.ok, wallet.body
        assert wallet.data["wallet"]["usableBalance"] == 2 * 1000  # two starter packages, each bought once
        assert httpx.get(f"{restarted.url}/healthz", timeout=5, verify=client_ssl_context()).status_code == 200
    finally:
        deployment.stop()


def test_without_reuse_port_a_second_process_cannot_bind_the_port(postgres_url: str, workdir: Path) -> None:
    deployment = Deployment(workdir, service_env(postgres_url))
    port = free_port()
    try:
        _serve(deployment, port)
        with pytest.raises(RuntimeError, match="exited"):
            _serve(deployment, port)
    finally:
        deployment.stop()
