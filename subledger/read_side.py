"""The read side of the composition: the ledger, the read-model database and the read models.

`build()` (subledger/app.py) starts from it and adds gateways, jobs, services and the HTTP
app. The commands that only read the ledger into read models (`projections rebuild`,
`audit verify`, `audit replay`) open it alone: importing the rest (Strawberry and the
GraphQL schema, the metrics, the gateways) cost about 0.4 s of CPU at every start
(docs/performance.md, where the suite's time goes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.ledger import Ledger
from projections.database import ViewDatabase
from projections.read_models import ReadModels
from projections.registry import read_models as registered_read_models
from projections.runner import ProjectionRunner
from subledger.ledger_setup import migrated_ledger
from subledger.settings import Settings
from subledger.storage import Database


@dataclass
class ReadSide:
    ledger: Ledger
    view_db: ViewDatabase
    #: Read model name -> its projection (projections/registry.py), in the registry's order.
    projections: dict[str, Any]
    runners: list[ProjectionRunner]
    read_models: ReadModels


def open_read_side(settings: Settings) -> ReadSide:
    """Migrated (or checked) as `build()` does: `settings` must already hold its secrets
    (`Settings.with_secrets`)."""
    db = Database.from_url(settings.database_url)
    # The view database first: it holds the personal-data keys the ledger's mapper needs.
    view_db = ViewDatabase.open(db, pool_size=settings.read_pool_size)
    projections = registered_read_models()
    ledger = migrated_ledger(settings, db, view_db, list(projections.values()))
    # Migrated or checked above: nothing is created from here on.
    runners = [ProjectionRunner(ledger, projection, view_db, create=False) for projection in projections.values()]
    return ReadSide(ledger, view_db, projections, runners, ReadModels(ledger, view_db, runners, create=False))
