"""Audit and privacy: the ledger's events, verification, rebuilds, erasure (SPEC §7)."""
from __future__ import annotations

import strawberry

from schema.context import Info
from schema.types.audit import AuditReport, LedgerEvent
from schema.types.operations import ProjectionStatus


@strawberry.type
class AuditQuery:
    @strawberry.field(description="AUDITOR or ADMIN: the ledger's events in global order, optionally for one aggregate or user.")
    async def events(
        self,
        info: Info,
        aggregate_id: strawberry.ID | None = None,
        user_id: strawberry.ID | None = None,
        after: int | None = None,
        first: int | None = 100,
    ) -> list[LedgerEvent]:
        info.context.caller.require("auditor", "admin")
        services = info.context.services
        entries = await services.run_sync(
            lambda: services.read_models.events(
                aggregate_id=str(aggregate_id) if aggregate_id is not None else None,
                user_id=str(user_id) if user_id is not None else None,
                after=after,
                first=100 if first is None else first,
            )
        )
        return [LedgerEvent.of(e) for e in entries]


@strawberry.type
class AuditMutation:
    @strawberry.mutation(description="ANALYST or ADMIN: rebuild a read model from ledger position 0 while the old one keeps serving.")
    async def rebuild_projection(self, info: Info, name: str) -> ProjectionStatus:
        info.context.caller.require("analyst", "admin")
        services = info.context.services
        rows = await services.run_sync(services.read_models.rebuild, [name])
        row = rows[0]
        return ProjectionStatus(name=row["name"], position=row["position"], head_position=row["headPosition"], lag=row["lag"])

    @strawberry.mutation(description="AUDITOR or ADMIN: replay the ledger and compare with the read models.")
    async def verify_ledger(self, info: Info) -> AuditReport:
        info.context.caller.require("auditor", "admin")
        services = info.context.services
        report = await services.run_sync(services.read_models.verify)
        return AuditReport(
            events_replayed=report.events_replayed, aggregates_checked=report.aggregates_checked, mismatches=report.lines()
        )

    @strawberry.mutation(description="ADMIN, or the user for themself: erase personal data (crypto-shredding); ledger amounts stay.")
    async def erase_user_data(self, info: Info, user_id: strawberry.ID) -> bool:
        user = info.context.caller.user_for(str(user_id))
        services = info.context.services
        erased = await services.run_sync(services.ledger.erase_personal_data, user, services.clock.now())
        if services.contacts is not None:
            services.contacts.forget(user)
        return erased
