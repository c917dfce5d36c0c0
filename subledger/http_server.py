"""How `subledger serve` runs uvicorn: asyncio's own event loop and the httptools parser.

uvicorn picks both by itself ("auto"): uvloop if it is installed, httptools if it is
installed, else asyncio and h11. The choice is made here instead, so what serves requests
does not depend on what else happens to be installed next to subledger.

- **httptools** (C, pinned in pyproject.toml) rather than h11 (pure Python): in six
  `subledger bench graphql` runs of each, old and new code alternating, the API process
  spent less CPU per `spendPoints` over HTTP in every pair (2.33 ms against 2.63 ms on
  average) and served more spends/s in every pair (415 against 365 on average); the p99
  moved either way (docs/performance.md#the-http-transport).
- **asyncio's loop**, not uvloop: uvloop saved CPU as well, but both runs with it had a p99
  of 536 and 607 ms, against 120-145 ms in the runs around them without it. The commands
  run in executor threads; why their answers wait so much longer under uvloop is not
  worked out, so it stays out.

The tests' in-thread servers (tests/servers.py) use the same settings. The sandbox
gateway's server (`subledger sandbox-gateway`) keeps uvicorn's own choice, which is
httptools too now that it is installed with subledger.
"""
from __future__ import annotations

from typing import Any

#: uvicorn.Config / uvicorn.run keywords: the event loop and the HTTP/1.1 parser.
UVICORN_TRANSPORT: dict[str, Any] = {"loop": "asyncio", "http": "httptools"}
