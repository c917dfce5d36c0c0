"""Shared pieces of the `subledger bench` scenarios: timing loops and the JSON line."""
from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def emit(name: str, **figures: Any) -> None:
    """One JSON object per line on stdout: the figures and the ratio against the baseline."""
    print(json.dumps({"bench": name, **figures}), flush=True)
    sys.stdout.flush()


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_threads(workers: int, seconds: float, make_step: Callable[[int], Callable[[], None]]) -> tuple[int, float]:
    """Run `workers` threads, each calling its step in a loop for `seconds`;
    returns (total steps completed, elapsed seconds)."""
    steps = [make_step(i) for i in range(workers)]
    counts = [0] * workers
    start = threading.Barrier(workers + 1)
    stop = threading.Event()

    def loop(i: int) -> None:
        start.wait()
        step = steps[i]
        while not stop.is_set():
            step()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began
