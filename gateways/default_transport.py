"""The transport a provider's client uses unless handed one: aiohttp's pool behind httpx's API
(gateways/aiohttp_transport.py), imported only when one is made. A process whose gateways
all run in process (the sandbox, the default) never imports aiohttp, which is about 0.1 s of
CPU on every start of `serve`, `worker` or `audit reconcile` (docs/performance.md)."""
from __future__ import annotations

import httpx


def network_transport(max_connections: int = 100) -> httpx.AsyncBaseTransport:
    """A new pooled transport (at most `max_connections` connections)."""
    from gateways.aiohttp_transport import AiohttpTransport

    return AiohttpTransport(max_connections=max_connections)
