"""The service's core (`subledger.core.build_core`: ledger, read models, jobs) opened on a test's
database without following the read models, as several processes open one deployment's."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from subledger.core import Built, build_core
from subledger.settings import Settings


@contextlib.contextmanager
def opened_cores(database_url: str, count: int = 1) -> Iterator[list[Built]]:
    """`count` cores on `database_url`, closed (ledger and read-model database) afterwards."""
    settings = Settings(database_url=database_url, projections_in_process=False)
    cores: list[Built] = []
    try:
        for _ in range(count):
            cores.append(build_core(settings))
        yield cores
    finally:
        for built in cores:
            built.ledger.close()
            built.view_db.close()
