"""Clock, scheduled job runs and projection status types."""
from __future__ import annotations

import strawberry

from schema.scalars import DateTime


@strawberry.type(description="The service's clock: the system clock, or the test clock (SUBLEDGER_CLOCK=test).")
class ClockInfo:
    now: DateTime = strawberry.field(description="The service's current time.")
    controllable: bool = strawberry.field(description="True when the clock can be moved (the test clock).")
    timezone: str = strawberry.field(description=(
        "The IANA time zone of the daily runs and of calendar days (SUBLEDGER_TIMEZONE), e.g. Asia/Seoul; "
        "the console shows times in it."
    ))


@strawberry.type(description="One run of a scheduled job.")
class JobRun:
    job: str = strawberry.field(description=(
        "The job: settle_stale_payments, finish_cancellations, expire_trials, charge_due_subscriptions, expire_points, "
        "send_notifications (00:00); subscription_reminders, warn_expiring_points, send_notifications (09:00)."
    ))
    ran_at: DateTime = strawberry.field(description="The time the job ran for: a scheduled 00:00 or 09:00 (workers, advanceTestClock), or now (runScheduledJobs).")
    processed: int = strawberry.field(description="Items the job looked at.")
    succeeded: int = strawberry.field(description="Items it completed (e.g. charges that succeeded).")
    failed: int = strawberry.field(description="Items that failed: errors, and for charges also declined attempts (which go to dunning).")


@strawberry.type(description="How far one read model has followed the ledger.")
class ProjectionStatus:
    name: str = strawberry.field(
        description="The read model: wallet_history, payments, subscriptions, notifications, aggregates, analytics."
    )
    position: int = strawberry.field(description="Last ledger position applied.")
    head_position: int = strawberry.field(description="Newest ledger position.")
    lag: int = strawberry.field(description="Events the read model has still to apply (headPosition − position).")
