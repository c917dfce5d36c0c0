"""A projection's read methods with the view database filled in, for callers
(resolvers, jobs) that should not know where the read model lives."""
from __future__ import annotations

import functools
from typing import Any

from projections.database import ViewDatabase


class BoundQueries:
    def __init__(self, projection: Any, view_db: ViewDatabase, methods: tuple[str, ...]) -> None:
        for name in methods:
            setattr(self, name, functools.partial(getattr(projection, name), view_db))
