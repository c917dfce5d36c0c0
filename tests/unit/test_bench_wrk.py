"""`subledger bench graphql` reads wrk's own text (benchmarks/graphql.py)."""
from __future__ import annotations

import pytest

from benchmarks.graphql import wrk_figures

#: wrk 4.1's output with --latency, a "+/- Stdev" column ending in 50% (it once was read as p50).
OUT = """Running 10s test @ http://127.0.0.1:40111
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    43.21ms   23.11ms 1.02s    72.50%
    Req/Sec   170.00     30.00   250.00     68.50%
  Latency Distribution
     50%   39.74ms
     75%   50.00ms
     90%   70.00ms
     99%    1.20s
  3371 requests in 10.01s, 1.20MB read
  Non-2xx or 3xx responses: 2
Requests/sec:    336.77
Transfer/sec:    122.64KB
"""


def test_the_percentiles_come_from_the_latency_distribution() -> None:
    figures = wrk_figures(OUT)
    assert figures["p50_ms"] == pytest.approx(39.74)
    assert figures["p99_ms"] == pytest.approx(1200.0)
    assert figures["requests"] == 3371 and figures["requests_per_s"] == 336.77
    assert figures["non_2xx"] == 2 and figures["socket_errors"] == 0
