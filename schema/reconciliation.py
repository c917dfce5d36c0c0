"""Reconciliation with the gateways (AUDITOR): the same report as `subledger audit reconcile`."""
from __future__ import annotations

from typing import Annotated

import strawberry

from domain.payments.reconcile import Finding as FindingValue
from domain.payments.reconcile import Report
from schema import permissions
from schema.context import Info
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.enums import served_enum

Finding = served_enum(FindingValue, "ReconciliationFinding", "How the ledger and a gateway disagree about one order.", {
    "CHARGED_NOT_SUCCEEDED": "The gateway took money the ledger does not count as paid.",
    "SUCCEEDED_NOT_CHARGED": "The ledger counts money the gateway never took.",
    "AMOUNT_DIFFERS": "Both know the charge, for different amounts.",
    "REFUNDS_DIFFER": "What the gateway gave back is not what the ledger settled as refunded.",
    "STALE_PENDING_CHARGE": "A charge has been PENDING for over a minute (the settle job should have settled it).",
    "STALE_PENDING_REFUND": "A refund has been PENDING for over a minute.",
    "UNKNOWN_ORDER": "The gateway charged an order the ledger has no payment for.",
    "LOOKUP_FAILED": "The gateway could not be asked: nothing is proven either way.",
})


@strawberry.type(description="One order on which the ledger and a gateway disagree.")
class Disagreement:
    finding: Finding = strawberry.field(description="What kind of disagreement.")
    provider: str = strawberry.field(description="The gateway asked (SANDBOX, TOSS, KAKAO_PAY, NAVER_PAY).")
    order_id: str = strawberry.field(description="The order id at the gateway (`*` for a failed listing of its orders).")
    payment_id: strawberry.ID | None = strawberry.field(description="Null for an order the ledger has no payment for.")
    ledger: str = strawberry.field(description="What the ledger holds, in words.")
    gateway: str = strawberry.field(description="What the gateway holds, in words.")


@strawberry.type(description="The ledger's payments of a period against the gateways' own records.")
class ReconciliationReport:
    since: DateTime | None = strawberry.field(description="Start of the period checked; null for all of history.")
    until: DateTime = strawberry.field(description="End of the period: when the report was made.")
    payments_checked: int = strawberry.field(description="Ledger payments looked up at their gateway.")
    gateway_orders_checked: int = strawberry.field(description="Gateway orders matched against the ledger.")
    clean: bool = strawberry.field(description="True when nothing disagrees.")
    disagreements: list[Disagreement] = strawberry.field(description="Every disagreement found.")

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
        "report each disagreement with the ledger, and every order they charged that the ledger does not know. "
        "The ledger's payments are listed from the payments read model, so one recorded within the projection "
        "delay may be left out of this report. Changes nothing."
    )))
    async def reconciliation(
        self, info: Info,
        since: Annotated[DateTime | None, strawberry.argument(description="Start of the period; default: all.")] = None,
    ) -> ReconciliationReport:
        permissions.caller(info)
        return ReconciliationReport.of(await info.context.services.reconcile(since))
