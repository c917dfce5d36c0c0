"""Catalog, identity, clock, scheduled jobs and projection status."""
from __future__ import annotations

from typing import Annotated

import strawberry

from domain.errors import InvalidInput
from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.catalog import Catalog
from schema.types.operations import ClockInfo, JobRun, ProjectionStatus


def job_runs(runs: list[dict]) -> list[JobRun]:
    return [JobRun(**run) for run in runs]


@strawberry.type
class OperationsQuery:
    @strawberry.field(description=permissions.described(Root.QUERY, "catalog", "Plans, point packages, service costs and reward activities."))
    def catalog(self, info: Info) -> Catalog:
        return Catalog.of(info.context.services.ledger.catalog)

    @strawberry.field(description=permissions.described(Root.QUERY, "me", "The token's subject."))
    def me(self, info: Info) -> strawberry.ID:
        return strawberry.ID(permissions.caller(info).user_id)

    @strawberry.field(description=permissions.described(
        Root.QUERY, "clock", "The service's time, and whether it is the test clock (advanceTestClock moves it)."
    ))
    def clock(self, info: Info) -> ClockInfo:
        clock = info.context.services.clock
        return ClockInfo(now=clock.now(), controllable=clock.controllable, timezone=info.context.services.timezone)

    @strawberry.field(description=permissions.described(
        Root.QUERY, "projections",
        "Each read model's position in the ledger and its lag: how far list queries may be behind the writes.",
    ))
    async def projections(self, info: Info) -> list[ProjectionStatus]:
        permissions.caller(info)
        services = info.context.services
        rows = await services.run_sync(services.projections)
        return [
            ProjectionStatus(name=r["name"], position=r["position"], head_position=r["headPosition"], lag=r["lag"])
            for r in rows
        ]


@strawberry.type
class OperationsMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "runScheduledJobs", "(Or POST /cron/run with the cron secret.) Run every scheduled job, those of the 00:00 and of the 09:00 "
        "run (charges, cancellations, expiries, reminders), for now: each acts only on what is due, so a second "
        "call finds nothing new. Answers the runs."
    ))
    async def run_scheduled_jobs(self, info: Info) -> list[JobRun]:
        permissions.caller(info)
        services = info.context.services
        return job_runs(await services.jobs.run_due(services.clock.now()))

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "advanceTestClock",
        "Test clock only (SUBLEDGER_CLOCK=test, else BAD_USER_INPUT): move the clock forward, firing every "
        "scheduled run (00:00 and 09:00) in between, in order, then set it to `to`. Answers the runs.",
        errors=("BAD_USER_INPUT",),
    ))
    async def advance_test_clock(
        self, info: Info,
        to: Annotated[DateTime, strawberry.argument(description="The new time; not before now (else BAD_USER_INPUT).")],
    ) -> list[JobRun]:
        permissions.caller(info)
        services = info.context.services
        if not services.clock.controllable:
            raise InvalidInput("the clock is not a test clock (set SUBLEDGER_CLOCK=test)")
        if to < services.clock.now():
            raise InvalidInput("the test clock cannot move backwards")
        return job_runs(await services.jobs.advance_test_clock(to))
