"""Clock, scheduled job runs and projection status types."""
from __future__ import annotations

import strawberry

from schema.scalars import DateTime


@strawberry.type
class ClockInfo:
    now: DateTime
    controllable: bool = strawberry.field(description="True when the clock can be moved (the test clock).")


@strawberry.type
class JobRun:
    job: str
    ran_at: DateTime
    processed: int
    succeeded: int
    failed: int


@strawberry.type
class ProjectionStatus:
    name: str
    position: int = strawberry.field(description="Last ledger position applied.")
    head_position: int = strawberry.field(description="Newest ledger position.")
    lag: int
