"""Audit and privacy: the ledger's events, verification, rebuilds, erasure (SPEC §7)."""
from __future__ import annotations

import strawberry

from projections.notifications import MAX_PAGE as MAX_NOTIFICATIONS
from schema import pages, permissions
from schema.context import Info
from schema.permissions import Root
from schema.types.audit import AuditReport, LedgerEvent, UserDataExport
from schema.types.operations import ProjectionStatus
from schema.types.payments import Payment, PaymentMethod
from schema.types.subscriptions import Notification, Subscription
from schema.types.wallet import Wallet


@strawberry.type
class AuditQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "events",
        f"The ledger's events in global order, optionally for one aggregate or user. {pages.EVENTS.describe()}",
    ))
    async def events(
        self,
        info: Info,
        aggregate_id: strawberry.ID | None = None,
        user_id: strawberry.ID | None = None,
        after: int | None = None,
        first: int | None = pages.EVENTS.default,
    ) -> list[LedgerEvent]:
        permissions.caller(info)
        size = pages.EVENTS.of(first)
        services = info.context.services
        entries = await services.run_sync(
            lambda: services.read_models.events(
                aggregate_id=str(aggregate_id) if aggregate_id is not None else None,
                user_id=str(user_id) if user_id is not None else None,
                after=after,
                first=size,
            )
        )
        return [LedgerEvent.of(e) for e in entries]

    @strawberry.field(description=permissions.described(Root.QUERY, "exportUserData", "All of the user's data."))
    async def export_user_data(self, info: Info, user_id: strawberry.ID | None = None) -> UserDataExport:
        user = permissions.subject(info, user_id)
        services = info.context.services
        ledger, now = services.ledger, services.clock.now()
        subscription_ids = await services.run_sync(services.subscriptions.subscription_ids, user)
        subscriptions = [await services.run_sync(ledger.subscription, s) for s in subscription_ids]
        payment_ids = await services.run_sync(services.payments.payment_ids, user)
        payments = [await services.run_sync(ledger.payment, p) for p in payment_ids]
        notifications = await services.run_sync(services.notifications.recent, user, MAX_NOTIFICATIONS)
        events = await services.run_sync(services.read_models.all_user_events, user)
        customer = await services.run_sync(ledger.customer, user)
        return UserDataExport(
            user_id=strawberry.ID(user),
            subscriptions=[Subscription.of(s, info, now) for s in subscriptions if s is not None],
            payments=[Payment.of(p) for p in payments if p is not None],
            wallet=Wallet.of(user, await services.run_sync(ledger.wallet, user), now),
            notifications=[Notification.of(row) for row in notifications],
            events=[LedgerEvent.of(e) for e in events],
            email=customer.email if customer else None,
            name=customer.name if customer else None,
            payment_methods=[PaymentMethod.of(user, m) for m in customer.payment_methods.values()] if customer else [],
        )


@strawberry.type
class AuditMutation:
    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "rebuildProjection", "Rebuild a read model from ledger position 0 while the old one keeps serving."
    ))
    async def rebuild_projection(self, info: Info, name: str) -> ProjectionStatus:
        permissions.caller(info)
        services = info.context.services
        rows = await services.run_sync(services.read_models.rebuild, [name])
        row = rows[0]
        return ProjectionStatus(name=row["name"], position=row["position"], head_position=row["headPosition"], lag=row["lag"])

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "verifyLedger", "Replay the ledger and compare with the read models."
    ))
    async def verify_ledger(self, info: Info) -> AuditReport:
        permissions.caller(info)
        services = info.context.services
        report = await services.run_sync(services.read_models.verify)
        return AuditReport(
            events_replayed=report.events_replayed, aggregates_checked=report.aggregates_checked, mismatches=report.lines()
        )

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "eraseUserData", "Erase personal data (crypto-shredding); ledger amounts stay."
    ))
    async def erase_user_data(self, info: Info, user_id: strawberry.ID) -> bool:
        user = permissions.subject(info, user_id)
        services = info.context.services
        erased = await services.run_sync(services.ledger.customers.erase_personal_data, user, services.clock.now())
        if services.contacts is not None:
            services.contacts.forget(user)
        return erased
