"""Keeping the garbage collector's full passes off what a process builds at start.

CPython's cyclic collector walks every tracked object on each full (oldest-generation)
pass. A subledger process holds about 110,000 of them once `build()` returns (the
GraphQL schema, the mappers, the settings, every imported module), and they live as
long as the process. A pass over the log (a rebuild, an audit, the projector catching
up) keeps thousands of decoded events alive per batch, which brings on a full pass
every few batches, and each walked the whole start-up heap again.

`gc.freeze()` is the standard library's own way to leave such objects out: it moves
everything tracked now into a permanent generation that no collection visits. Reference
counting still frees them; only a reference cycle among them would stay until exit,
which for objects meant to live as long as the process costs nothing.

Measured on a 100,000-event SQLite ledger (docs/performance.md), rebuilding every read
model took 6.6 s without and 4.8 s with it (the same script run twice, one after the other), and the best of
three `subledger bench rebuild` runs 5.4 s against 5.0 s. The read-model and audit
commands and the projector (subledger/cli_read_models.py) and `bench rebuild` call it.

`serve` calls it too, for its latency rather than its throughput: a full pass over the
unfrozen heap took 55-100 ms and every request in flight waited for it. Two API processes
on PostgreSQL (`serve --reuse-port`), 2 wrk connections of `spendPoints`, four runs
alternating: p99 30.1 and 39.5 ms without, 13.8 and 10.6 ms with; p99.9 69-74 ms against
15-20 ms. Under full load the spends/s did not move beyond the noise (docs/performance.md).

Tests, which build many apps in one process, do not: there, frozen apps would never be
collected.
"""
from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
