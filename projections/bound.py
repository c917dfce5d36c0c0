"""A projection's read methods with the view database filled in, for callers
(resolvers, jobs) that should not know where the read model lives.

Each call goes to the projection over the live tables, so queries move to a
rebuilt set of tables as soon as it is switched in (projections/generations.py).
"""
from __future__ import annotations

from typing import Any

from projections.database import ViewDatabase
from projections.generations import LiveProjection


class BoundQueries:
    def __init__(self, projection: Any, view_db: ViewDatabase, methods: tuple[str, ...]) -> None:
        live = LiveProjection(projection, view_db)
        for name in methods:
            setattr(self, name, _live_method(live, name, view_db))


def _live_method(live: LiveProjection, name: str, view_db: ViewDatabase) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(live.current(), name)(view_db, *args, **kwargs)

    call.__name__ = name
    return call
