"""Reconciliation with the gateways (AUDITOR): the same report as `subledger audit reconcile`."""
from __future__ import annotations

import strawberry

from domain.payments.reconcile import Finding as FindingValue
from domain.payments.reconcile import Report
from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime

Finding = strawberry.enum(FindingValue, name="ReconciliationFinding", description=(
    "How the ledger and a gateway disagree about one order."
))


@strawberry.type
class Disagreement:
    finding: Finding
    provider: str
    order_id: str
    payment_id: strawberry.ID | None = strawberry.field(description="Null for an order the ledger has no payment for.")
    ledger: str = strawberry.field(description="What the ledger holds, in words.")
    gateway: str = strawberry.field(description="What the gateway holds, in words.")


@strawberry.type(description="The ledger's payments of a period against the gateways' own records.")
class ReconciliationReport:
    since: DateTime | None
    until: DateTime
    payments_checked: int
    gateway_orders_checked: int
    clean: bool = strawberry.field(description="True when nothing disagrees.")
    disagreements: list[Disagreement]

    @classmethod
    def of(cls, report: Report) -> ReconciliationReport:
        return cls(
            since=report.since, until=report.until, payments_checked=report.payments_checked,
            gateway_orders_checked=report.gateway_orders_checked, clean=report.clean,
            disagreements=[
                Disagreement(finding=d.finding, provider=d.provider, order_id=d.order_id,
                             payment_id=strawberry.ID(d.payment_id) if d.payment_id else None,
                             ledger=d.ledger, gateway=d.gateway)
                for d in report.disagreements
            ],
        )


@strawberry.type
class ReconciliationQuery:
    @strawberry.field(description=permissions.described(Root.QUERY, "reconciliation", (
        "Ask the gateways about every payment requested since `since` (default: all) and "
        "report each disagreement with the ledger, and every order they charged that the ledger does not know."
    )))
    async def reconciliation(self, info: Info, since: DateTime | None = None) -> ReconciliationReport:
        permissions.caller(info)
        return ReconciliationReport.of(await info.context.services.reconcile(since))
