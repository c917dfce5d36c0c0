"""Audit and privacy: the ledger's events, verification, rebuilds, erasure (SPEC §7)."""
from __future__ import annotations

from typing import Annotated

import strawberry

from projections.notifications import MAX_PAGE as MAX_NOTIFICATIONS
from schema import pages, permissions
from schema.arguments import NAMED_USER, UserId
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
        "The ledger's events in global order (oldest first), optionally for one aggregate or user; read from "
        "the ledger itself (a userId finds the user's aggregates through a read model, which may lag by the "
        f"projection delay). {pages.EVENTS.describe()}",
        errors=("BAD_USER_INPUT",),
    ), deprecation_reason="Use eventsPage: the same list, paged by an opaque cursor like every other list.")
    async def events(
        self,
        info: Info,
        aggregate_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this aggregate's events.")] = None,
        user_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only the events of this user's aggregates."
        )] = None,
        after: Annotated[int | None, strawberry.argument(
            description="Only events after this position (the last position of the previous page)."
        )] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = pages.EVENTS.default,
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

    @strawberry.field(description=permissions.described(
        Root.QUERY, "exportUserData", "All of the user's data (personal data access); lists may lag, see UserDataExport."
    ))
    async def export_user_data(self, info: Info, user_id: UserId = None) -> UserDataExport:
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
        Root.MUTATION, "rebuildProjection",
        "Rebuild a read model from ledger position 0 beside the live one, which keeps serving, then switch to "
        "it. Answers when done. An unknown name answers BAD_USER_INPUT; a rebuild already running, CONFLICT.",
        errors=("BAD_USER_INPUT", "CONFLICT"),
    ))
    async def rebuild_projection(
        self, info: Info,
        name: Annotated[str, strawberry.argument(description="The read model, as `projections` names it.")],
    ) -> ProjectionStatus:
        permissions.caller(info)
        services = info.context.services
        rows = await services.run_sync(services.read_models.rebuild, [name])
        row = rows[0]
        return ProjectionStatus(name=row["name"], position=row["position"], head_position=row["headPosition"], lag=row["lag"])

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "verifyLedger",
        "Replay the whole ledger and compare every aggregate with the read models; changes nothing. Answers "
        "the mismatches (empty when consistent).",
    ))
    async def verify_ledger(self, info: Info) -> AuditReport:
        permissions.caller(info)
        services = info.context.services
        report = await services.run_sync(services.read_models.verify)
        return AuditReport(
            events_replayed=report.events_replayed, aggregates_checked=report.aggregates_checked, mismatches=report.lines()
        )

    @strawberry.mutation(description=permissions.described(
        Root.MUTATION, "eraseUserData",
        "Erase the user's personal data by destroying their key (crypto-shredding): email, name, masked cards "
        "and billing keys read as null from then on, in every event and export; amounts, times and ids stay. "
        "Cannot be undone; repeating it is harmless. Answers true.",
    ))
    async def erase_user_data(
        self, info: Info, user_id: Annotated[strawberry.ID, strawberry.argument(description=NAMED_USER)]
    ) -> bool:
        user = permissions.subject(info, user_id)
        services = info.context.services
        erased = await services.run_sync(services.ledger.customers.erase_personal_data, user, services.clock.now())
        if services.contacts is not None:
            services.contacts.forget(user)
        return erased
