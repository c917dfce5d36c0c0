"""The reverse proxy's choice of API replica (deploy/nginx/default.conf.template), through a
real nginx with the template rendered as `bench graphql --api-processes N` renders it (one
`server` line per replica, benchmarks/proxy.py): every request bearing one token reaches the
same replica, requests without a token spread over all of them, and a replica that is down
does not strand its callers.

The two replicas are small HTTP servers that answer with their own name: what is under test
is the proxy's routing, which the replicas cannot influence.
"""
from __future__ import annotations

import json
import uuid
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from benchmarks import proxy
from benchmarks.deployment import free_port

pytestmark = pytest.mark.skipif(
    proxy.nginx_binary() is None,
    reason="nginx is not installed (scripts/test installs it with apt-get where it can)",
)


class Replica:
    """An HTTP server answering every request with its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"replica": replica.name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # A short poll, so stopping a replica (shutdown waits for the loop to look) is quick.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def layout() -> Iterator[tuple[str, dict[str, Replica]]]:
    replicas = {name: Replica(name) for name in ("a", "b")}
    port = free_port()
    nginx = proxy.start([replica.port for replica in replicas.values()], port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert nginx.poll() is None, "nginx exited as it started"
        assert time.monotonic() < deadline, "nginx did not answer"
        time.sleep(0.1)
    try:
        yield url, replicas
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        for replica in replicas.values():
            replica.stop()


def served_by(client: httpx.Client, url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.post(f"{url}/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["replica"]


def test_every_request_of_one_token_reaches_one_replica_and_tokens_spread(layout) -> None:  # noqa: ANN001
    url, _ = layout
    with httpx.Client(timeout=10) as client:
        chosen = {}
        for number in range(24):
            token = f"token-of-caller-{number}"
            seen = {served_by(client, url, token) for _ in range(6)}
            assert len(seen) == 1, f"{token} reached {sorted(seen)}"
            chosen[token] = seen.pop()
    assert set(chosen.values()) == {"a", "b"}, chosen


def test_requests_without_a_token_spread_over_the_replicas(layout) -> None:  # noqa: ANN001
    url, _ = layout
    with httpx.Client(timeout=10) as client:
        seen = [served_by(client, url, None) for _ in range(40)]
    assert set(seen) == {"a", "b"}, seen


def test_a_caller_whose_replica_is_down_is_served_by_another(layout) -> None:  # noqa: ANN001
    url, replicas = layout
    with httpx.Client(timeout=10) as client:
        tokens = {served_by(client, url, f"caller-{n}"): f"caller-{n}" for n in range(24)}
        stranded = tokens["a"]
        replicas["a"].stop()
        # The connection to `a` is refused, so the request was never sent: nginx passes it on
        # (a POST that reached a replica is never sent twice).
        assert {served_by(client, url, stranded) for _ in range(4)} == {"b"}
        assert served_by(client, url, tokens["b"]) == "b"


def test_the_bench_layout_serves_every_caller_through_the_proxy(postgres_url: str) -> None:
    """`bench graphql --api-processes 2`'s layout: two real `serve` processes and a projector,
    nginx in front; a caller's spends go through the proxy and are answered from the ledger."""
    from datetime import datetime, timezone

    from benchmarks import graphql
    from schema.auth import mint_token
    from subledger.app import build
    from subledger.settings import Settings

    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=proxy_bench_{uuid.uuid4().hex[:8]}"
    built = build(Settings(database_url=url, jwt_secret=graphql.SECRET, projections_in_process=False))
    user = f"proxied-{uuid.uuid4().hex[:8]}"
    built.ledger.wallets.adjust_points(user, 100, "test", now=datetime.now(timezone.utc), actor="test")
    layout = graphql.start_layout(url, 2, proxy.Front.NGINX)
    try:
        assert layout.proxy is not None and layout.proxy.poll() is None
        assert len(proxy.process_tree(layout.proxy.pid)) >= 2  # nginx's master and its worker
        token = mint_token(graphql.SECRET, user, "user")
        spend = "mutation($s: String!) { spendPoints(input: {amount: 1, serviceId: $s}) { remainingBalance } }"
        with httpx.Client(timeout=30) as client:
            balances = [
                client.post(f"http://127.0.0.1:{layout.port}/graphql", headers={"Authorization": f"Bearer {token}"},
                            json={"query": spend, "variables": {"s": f"s-{n}"}}).json()["data"]["spendPoints"]["remainingBalance"]
                for n in range(5)
            ]
        assert balances == [99, 98, 97, 96, 95]
        assert built.ledger.wallet(user).total_balance == 95  # the ledger, read afresh
    finally:
        layout.stop()
        built.ledger.close()
        built.view_db.close()
    assert all(process.poll() is not None for process in [layout.proxy, *layout.apis, layout.projector])
