"""httpx's transport over aiohttp: the gateway clients keep httpx's API (auth, base URLs,
timeouts, its exceptions), and aiohttp's connection pool and C parser carry the bytes.

Why: httpcore's pool walks every connection it holds (and polls each idle socket) on every
request event. At 64 gateway requests in flight that cost the worker's event loop about
2.4 ms of CPU per request even split into eight pools, against 0.83 ms through this
transport (docs/performance.md, Renewals). httpx takes a transport as its extension point;
this one only translates: the request httpx built goes out as it is, and the answer comes
back as an httpx.Response, read whole (gateway answers are small JSON bodies).

The translation of failures is the part that matters for money. A request that cannot have
left this machine is a ConnectError or ConnectTimeout (the clients send it again, even a
charge without an idempotency key); anything that may have reached the provider is another
TransportError (the outcome is unknown, settled by a lookup). aiohttp's ClientConnectionError
covers both kinds, so each is named here, and whatever is not known to be unsent counts as sent.
"""
from __future__ import annotations

import asyncio
import ssl
import urllib.request

import aiohttp
import httpx

from gateways.tls import client_ssl_context

# Nothing was sent: the connection was never made, or no pooled connection came free in time.
_NOT_CONNECTED = aiohttp.ClientConnectorError  # refused, DNS, TLS handshake and certificate
_NO_CONNECTION_IN_TIME = aiohttp.ConnectionTimeoutError


def _message(exc: BaseException) -> str:
    """What the failure says, without the request's URL: a charge's path holds the billing key,
    and aiohttp puts the whole URL in an answer's error and an invalid URL's."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return type(exc).__name__
    return str(exc) or type(exc).__name__


def translated(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure of `request` (see the module's docstring)."""
    message = _message(exc)
    if isinstance(exc, _NO_CONNECTION_IN_TIME):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, _NOT_CONNECTED):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's SocketTimeoutError: the answer was late
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)  # hung up, or a malformed answer
    return httpx.ReadError(message, request=request)  # reset, a cut body, any other: may have been sent


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` connections in all, kept alive `keepalive_seconds`. TLS is
    verified with httpx's own context (certifi's roots, or SSL_CERT_FILE), one per process
    (gateways/tls.py). A proxy comes from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
    NO_PROXY) as it does for httpx, read once when the transport is made, where aiohttp's own
    `trust_env` reads the environment and the netrc file again on two threads for every request.

    aiohttp binds a session to the event loop that made it, and one app may serve more than
    one loop in turn (a command's `asyncio.run` after another's): a request on a new loop
    marks the session of a loop that has ended closed (its sockets cannot be closed through a
    closed loop; the garbage collector releases them) and opens its own. httpx's own pool
    fails such a request with "Event loop is closed"."""

    def __init__(self, max_connections: int = 100, keepalive_seconds: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._ssl: ssl.SSLContext = client_ssl_context()  # made once per process (gateways/tls.py)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._env_proxies = urllib.request.getproxies_environment()
        self._proxies: dict[tuple[str, str], str | None] = {}

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            for ended in [other for other in self._sessions if other.is_closed()]:
                await self._sessions.pop(ended).close()
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_seconds,
                    ssl=self._ssl,
                ),
                auto_decompress=False,  # httpx decodes, from the answer's headers
            )
            self._sessions[loop] = session
        return session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        limits = request.extensions.get("timeout", {})
        key = (limits.get("pool"), limits.get("connect"), limits.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            # httpx's pool wait plus connect is aiohttp's `connect`; its read timeout, `sock_read`.
            pool, connect, read = key
            whole = None if pool is None or connect is None else pool + connect
            timeout = aiohttp.ClientTimeout(total=None, connect=whole, sock_connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    def _proxy(self, url: httpx.URL) -> str | None:
        if not self._env_proxies:
            return None
        key = (url.scheme, url.host)
        if key not in self._proxies:
            bypass = urllib.request.proxy_bypass_environment(url.host, self._env_proxies)
            proxy = self._env_proxies.get(url.scheme) or self._env_proxies.get("all")
            self._proxies[key] = None if bypass else proxy
        return self._proxies[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = await self._session()
        try:
            async with session.request(
                request.method, str(request.url), headers=list(request.headers.multi_items()),
                data=request.content or None, allow_redirects=False, compress=None,
                timeout=self._timeout(request), proxy=self._proxy(request.url),
            ) as answer:
                body = await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise translated(exc, request) from exc
        extensions = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode("latin-1", "replace")
        return httpx.Response(
            answer.status, headers=list(answer.raw_headers), stream=httpx.ByteStream(body),
            request=request, extensions=extensions,
        )

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
