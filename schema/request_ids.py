"""Request ids and the access log: every HTTP request gets an id, answered in `X-Request-ID`
and bound (structlog contextvars) to every log line written while it is served.

The id is the caller's own `X-Request-ID` when it is sane - 1 to 128 characters of letters,
digits and `-_.:/+=@` (a UUID, a proxy's or a tracing system's id) - so a reverse proxy's id
follows the request through; anything else (too long, spaces, control characters, a second
header) is replaced by a fresh one (32 hex digits) rather than written into the log.

One access line per request when its answer is sent (`http_request`): method, route (the
served path, or `other` for a path the API does not serve), status, duration in milliseconds
and the request id; for `other`, the path (without its query). Never a header value or a
body: a token or a billing key cannot reach it. Probes and scrapes (`/healthz`, `/readyz`,
`/metrics`: a healthcheck every few seconds) are logged at DEBUG, every other request at INFO.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.metrics import KNOWN_ROUTES

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
_SANE = re.compile(r"[A-Za-z0-9\-_.:/+=@]{1,128}")
#: Routes called by machines every few seconds: their access lines are DEBUG.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
#: Longest path an access line repeats (for routes the API does not serve).
MAX_LOGGED_PATH = 200

log = structlog.get_logger("subledger.access")


def request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when there is exactly one and it is sane, else a new id."""
    given = [value for key, value in scope.get("headers") or [] if key.lower() == _HEADER_KEY]
    if len(given) == 1:
        text = given[0].decode("latin-1")
        if _SANE.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware (outermost): the request id in the context, the header and the access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id(scope)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, (_HEADER_KEY, rid.encode("latin-1"))]}
            await send(message)

        # Bound for this request only, and reset after it (the ASGI caller may share a task).
        with structlog.contextvars.bound_contextvars(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._access_line(scope, status["code"], time.perf_counter() - started)

    @staticmethod
    def _access_line(scope: Scope, status: int, seconds: float) -> None:
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        fields: dict[str, Any] = {
            "method": scope["method"], "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)
        }
        if route == "other":
            fields["path"] = path[:MAX_LOGGED_PATH]
        if route in PROBES:
            log.debug("http_request", **fields)
        else:
            log.info("http_request", **fields)
