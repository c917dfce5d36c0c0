"""The gateway clients' transport (gateways/aiohttp_transport.py) against real TCP servers:
what counts as "never sent" (a charge may be sent again) and what as "may have arrived",
timeouts, the connection limit, answers decoded as httpx decodes them, a proxy from the
environment, and one transport used from one event loop after another.

(An answer lost after the request arrived is `test_answer_lost_before_headers.py`.)"""
from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import threading
import warnings
from collections.abc import Iterator

import httpx
import pytest

from gateways.aiohttp_transport import AiohttpTransport
from gateways.careful_post import NEVER_SENT
from tests.raw_http import read_request


class ScriptedServer:
    """Reads each request whole, records its request line and the Host it named, then answers
    with `answer` (raw bytes), or holds the connection open without a word when `answer` is None.
    Connections are kept alive; `connections` counts those accepted."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        rest = b""
        while True:
            line, rest = read_request(connection, rest)
            if line is None:
                return
            self.requests.append(line)
            if self.answer is not None:  # else hold on: never answer
                connection.sendall(self.answer)

    def close(self) -> None:
        self._socket.close()
        for connection in self._open:
            connection.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
def silent() -> Iterator[ScriptedServer]:
    server = ScriptedServer(None)
    yield server
    server.close()


@pytest.fixture
def answering() -> Iterator[ScriptedServer]:
    server = ScriptedServer(answer(b'{"ok": true}', "Content-Type: application/json"))
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_refused_connection_is_never_sent() -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.post(f"http://127.0.0.1:{closed_port()}/v1/billing/bk", json={"amount": 1000})
    assert isinstance(raised.value, NEVER_SENT)


async def test_a_late_answer_is_a_read_timeout_and_may_have_arrived(silent: ScriptedServer) -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(5, read=0.3)) as client:
        with pytest.raises(httpx.ReadTimeout) as raised:
            await client.post(f"{silent.url}/v1/billing/bk", json={"amount": 1000})
    assert not isinstance(raised.value, NEVER_SENT)
    assert silent.requests == [b"POST /v1/billing/bk HTTP/1.1"]


async def test_no_free_connection_in_time_is_never_sent(silent: ScriptedServer) -> None:
    """One connection allowed and held by a request without an answer: the next one waits for
    it, gives up after the pool timeout, and the server never saw it."""
    transport = AiohttpTransport(max_connections=1)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.2, connect=0.2)) as client:
        # The first gets time to connect on a busy machine; only the second's wait is under test.
        first = asyncio.create_task(client.post(f"{silent.url}/first", json={}, timeout=httpx.Timeout(30)))
        async with asyncio.timeout(30):
            while not silent.requests:
                if first.done():
                    raise AssertionError(f"the first request ended before the server saw it: {first.exception()!r}")
                await asyncio.sleep(0.01)
        with pytest.raises(httpx.ConnectTimeout) as raised:
            await client.post(f"{silent.url}/second", json={})
        first.cancel()
    assert isinstance(raised.value, NEVER_SENT)
    assert silent.requests == [b"POST /first HTTP/1.1"] and silent.connections == 1


async def test_answers_come_back_as_httpx_reads_them() -> None:
    """Status, reason, repeated headers and a gzip body decoded by httpx from the headers."""
    body = gzip.compress(b'{"status": "DONE"}')
    server = ScriptedServer(answer(body, "Content-Encoding: gzip", "Set-Cookie: a=1", "Set-Cookie: b=2",
                                   status="202 Accepted Here"))
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport(), base_url=server.url,
                                     auth=httpx.BasicAuth("test_sk_x", "")) as client:
            response = await client.get("/v1/payments/orders/o-1", params={"q": "한"})
    finally:
        server.close()
    assert (response.status_code, response.reason_phrase) == (202, "Accepted Here")
    assert response.json() == {"status": "DONE"}
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert server.requests == [b"GET /v1/payments/orders/o-1?q=%ED%95%9C HTTP/1.1"]


async def test_connections_are_kept_alive_up_to_the_limit(answering: ScriptedServer) -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport(max_connections=4), base_url=answering.url) as client:
        answers = await asyncio.gather(*(client.post(f"/n/{n}", json={"n": n}) for n in range(40)))
    assert [a.json() for a in answers] == [{"ok": True}] * 40
    assert len(answering.requests) == 40 and 1 <= answering.connections <= 4


def test_one_transport_serves_one_event_loop_after_another(answering: ScriptedServer) -> None:
    """A command's `asyncio.run` after another's: each loop gets its own session, and the one
    left by an ended loop is marked closed (no 'Unclosed client session' warning; its sockets
    went with the loop and are the garbage collector's). httpx's own pool fails the second
    request here with "Event loop is closed"."""
    transport = AiohttpTransport()
    client = httpx.AsyncClient(transport=transport, base_url=answering.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert asyncio.run(client.get("/again")).json() == {"ok": True}
        asyncio.run(client.aclose())
        gc.collect()
    assert len(answering.requests) == 3
    assert [str(w.message) for w in caught if "nclosed client session" in str(w.message)] == []


async def test_a_proxy_from_the_environment(answering: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY as httpx would honor it; NO_PROXY hosts go direct."""
    target = f"http://gateway.invalid:{closed_port()}/v1/payments/orders/o-1"
    monkeypatch.setenv("HTTP_PROXY", answering.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        assert (await client.get(target)).json() == {"ok": True}
    assert answering.requests == [f"GET {target} HTTP/1.1".encode()]

    monkeypatch.setenv("NO_PROXY", "gateway.invalid")
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx.ConnectError):  # straight to a host that does not resolve
            await client.get(target)
    assert len(answering.requests) == 1


async def test_a_malformed_answer_may_have_arrived_and_its_error_names_no_path() -> None:
    """A charge's path holds the billing key; aiohttp names the whole URL in such errors."""
    server = ScriptedServer(b"NOT HTTP AT ALL\r\n\r\n")
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
            with pytest.raises(httpx.TransportError) as raised:
                await client.post(f"{server.url}/v1/billing/bk_secret_4242", json={"amount": 1000})
    finally:
        server.close()
    assert not isinstance(raised.value, NEVER_SENT)
    assert "bk_secret_4242" not in str(raised.value), str(raised.value)
    assert server.requests == [b"POST /v1/billing/bk_secret_4242 HTTP/1.1"]
