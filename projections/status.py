"""How far each read model lags behind the ledger (the `projections` query, /readyz)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from projections.runner import ProjectionRunner


def status(runners: Iterable[ProjectionRunner]) -> list[dict[str, Any]]:
    """One entry per runner: name, position, headPosition, lag (notification ids behind)."""
    entries = []
    heads: dict[int, int] = {}
    for runner in runners:
        # Runners of one ledger share its head: ask the ledger once.
        head = heads.setdefault(id(runner.ledger), runner.head())
        position = runner.position()
        entries.append({"name": runner.name, "position": position, "headPosition": head, "lag": max(0, head - position)})
    return entries
