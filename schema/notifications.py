"""The notifications outbox query (SPEC §7). A list query: it reads the outbox
projection, which may lag the ledger by the projection delay."""
from __future__ import annotations

import strawberry

from schema.context import Info
from schema.types.subscriptions import Notification


@strawberry.type
class NotificationsQuery:
    @strawberry.field(description="Newest first.")
    async def notifications(
        self, info: Info, user_id: strawberry.ID | None = None, first: int | None = 50
    ) -> list[Notification]:
        services = info.context.services
        user = info.context.caller.user_for(user_id)
        rows = await services.run_sync(services.notifications.recent, user, 50 if first is None else first)
        return [Notification.of(row) for row in rows]
