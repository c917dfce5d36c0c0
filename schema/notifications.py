"""The notifications outbox query (SPEC §7). A list query: it reads the outbox
projection, which may lag the ledger by the projection delay."""
from __future__ import annotations

import strawberry

from schema import pages, permissions
from schema.context import Info
from schema.permissions import Root
from schema.types.subscriptions import Notification


@strawberry.type
class NotificationsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "notifications", f"Newest first. {pages.NOTIFICATIONS.describe()}"
    ))
    async def notifications(
        self, info: Info, user_id: strawberry.ID | None = None, first: int | None = pages.NOTIFICATIONS.default
    ) -> list[Notification]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        rows = await services.run_sync(services.notifications.recent, user, pages.NOTIFICATIONS.of(first))
        return [Notification.of(row) for row in rows]
