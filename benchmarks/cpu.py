"""CPU seconds spent by groups of processes over a stretch of a bench, read from /proc.

A group is a function returning its pids, asked at the start and at the end: a
process that appears in between (a new PostgreSQL backend) counts from zero; one
that ends in between loses what it spent (the bench warms its pools first).
"""
from __future__ import annotations

import os
from collections.abc import Callable

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def postgres_pids() -> list[int]:
    """PostgreSQL's server processes on this machine (the postmaster and its backends)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() in ("postgres", "postmaster"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


class CpuMeter:
    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start = {name: self._sample(pids()) for name, pids in groups.items()}

    @staticmethod
    def _sample(pids: list[int]) -> dict[int, float]:
        return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}

    def read(self) -> dict[str, float]:
        """CPU seconds per group since the meter was made."""
        spent = {}
        for name, pids in self.groups.items():
            now, before = self._sample(pids()), self.start[name]
            spent[name] = sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())
        return spent
