"""`subledger bench layers`: where the API process's CPU per `spendPoints` goes, layer by
layer, all in one process and one run (docs/performance.md#the-api-process-layer-by-layer).

The HTTP path of `bench graphql` costs the API process about three times the command's
own CPU. This bench takes the same request apart without a network or a second process,
so each layer's share is a difference of two figures measured minutes apart:

1. `command_threads`: the command alone, called by 16 threads (the baseline, as
   `bench graphql`'s in-process half calls it);
2. `command_executor`: the same command awaited from 16 asyncio tasks through the
   service's executor (`Services.run_sync`), as every resolver runs a command;
3. `typename_app`: `{ __typename }` through the whole ASGI app: the middleware,
   Starlette and strawberry's fixed cost per request, with no command;
4. `spend_view`: the spendPoints mutation through strawberry's view alone (the
   `/graphql` route's ASGI app): request parsing, the context, execution, the answer;
5. `spend_app`: the same through the whole ASGI app (request ids, the access line,
   metrics, the body-size limit, Starlette's routing).

Each is CPU seconds of this process (every thread) per request, over `requests` requests
at 16 at a time, after a warm-up (access lines written as `serve` writes them, to
/dev/null); each layer is measured `rounds` times, in turn with the
others, and the lowest is kept (what the layer costs when nothing else disturbs it). The
app is started through its own lifespan, as `subledger serve` starts it, with the read
models followed elsewhere (as in the production layout). Transport (uvicorn, sockets)
is not in it: `bench graphql` measures that.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from benchmarks.common import emit
from schema.auth import mint_token
from subledger.app import build
from subledger.logging import configure_logging
from subledger.settings import Settings

SECRET = "bench-secret-bench-secret-bench-secret"
CALLERS = 16
SPEND = "mutation($s: String!) { spendPoints(input: {amount: 1, serviceId: $s}) { remainingBalance } }"
TYPENAME = "query { __typename }"
LAYERS = ("command_threads", "command_executor", "typename_app", "spend_view", "spend_app")


class _Requests:
    """Requests made in process: an ASGI scope, its body, and a check of the answer."""

    def __init__(self, users: list[str]) -> None:
        self.tokens = [b"Bearer " + mint_token(SECRET, user, "user").encode() for user in users]
        self.serial = 0

    async def call(self, app: Any, query: str, caller: int) -> None:
        self.serial += 1
        body = json.dumps({"query": query, "variables": {"s": f"layers-{self.serial}"}}).encode()
        headers = [
            (b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
            (b"authorization", self.tokens[(caller + self.serial) % len(self.tokens)]),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            answer.append(message)

        await app(scope, receive, send)
        status, text = answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:])
        if status != 200 or b'"errors"' in text:
            raise SystemExit(f"bench layers: the API answered {status}: {text[:300]!r}")


def _graphql_view(app: Any) -> Any:
    """The `/graphql` route's own ASGI app, found through the middleware that wraps Starlette."""
    while not hasattr(app, "routes"):
        app = app.app
    return next(route.app for route in app.routes if getattr(route, "path", "") == "/graphql")


def run(database_url: str, requests: int = 8000, rounds: int = 2, users_count: int = 200) -> dict[str, Any]:
    settings = Settings(database_url=database_url, jwt_secret=SECRET, projections_in_process=False)
    # Logged as `serve` logs, to where `bench graphql` sends its API processes' lines.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    configure_logging(settings.env, settings.log_level, stream=devnull)
    built = build(settings)
    now = datetime.now(timezone.utc)
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(users_count)]
    for user in users:
        built.ledger.wallets.adjust_points(user, 100_000_000, "bench", now=now, actor="bench")
    made = _Requests(users)
    app = built.http
    view = _graphql_view(app)
    each = max(requests // CALLERS, 1)
    total = each * CALLERS

    def spend(caller: int, n: int) -> None:
        built.ledger.wallets.spend_points(
            users[(caller + n) % len(users)], service=None, amount=1, service_id=f"layers-t-{uuid.uuid4().hex}", now=now
        )

    def threads() -> None:
        def loop(caller: int) -> None:
            for n in range(each):
                spend(caller, n)

        workers = [threading.Thread(target=loop, args=(i,)) for i in range(CALLERS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    async def tasks(step: Callable[[int, int], Awaitable[None]]) -> None:
        async def loop(caller: int) -> None:
            for n in range(each):
                await step(caller, n)

        await asyncio.gather(*(loop(i) for i in range(CALLERS)))

    async def executor(caller: int, n: int) -> None:
        await built.services.run_sync(spend, caller, n)

    def through(target: Any, query: str) -> Callable[[int, int], Awaitable[None]]:
        return lambda caller, _n: made.call(target, query, caller)

    async def measure() -> dict[str, list[float]]:
        lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.Event()

        async def lifespan_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await lifespan.put({"type": "lifespan.startup"})
        serving = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan.get, lifespan_send))
        await asyncio.wait_for(started.wait(), 60)
        steps: dict[str, Callable[[int, int], Awaitable[None]]] = {
            "command_executor": executor, "typename_app": through(app, TYPENAME),
            "spend_view": through(view, SPEND), "spend_app": through(app, SPEND),
        }
        figures: dict[str, list[float]] = {name: [] for name in LAYERS}
        try:
            await tasks(steps["spend_app"])  # warm-up: every wallet cached, every pool connection open
            for _ in range(rounds):
                loop = asyncio.get_running_loop()
                began = time.process_time()
                await loop.run_in_executor(None, threads)  # the loop waits idle meanwhile
                figures["command_threads"].append((time.process_time() - began) * 1000 / total)
                for name, step in steps.items():
                    began = time.process_time()
                    await tasks(step)
                    figures[name].append((time.process_time() - began) * 1000 / total)
        finally:
            await lifespan.put({"type": "lifespan.shutdown"})
            await serving  # closes the ledger and the view database
        return figures

    try:
        figures = asyncio.run(measure())
    finally:
        devnull.close()
    best = {name: min(values) for name, values in figures.items()}
    base = best["command_threads"]
    result = {
        "database": built.view_db.kind,
        "requests": total,
        "callers": CALLERS,
        "rounds": rounds,
        "cpu_ms_per_request": {name: round(value, 3) for name, value in best.items()},
        "every_round": {name: [round(v, 3) for v in values] for name, values in figures.items()},
        "ratio_to_command": {name: round(value / base, 2) for name, value in best.items()},
        "shares_ms": {
            "executor_hand_off": round(best["command_executor"] - base, 3),
            "graphql_view": round(best["spend_view"] - best["command_executor"], 3),
            "middleware_and_routing": round(best["spend_app"] - best["spend_view"], 3),
        },
    }
    emit("layers", **result)
    return result
