"""The notifications outbox query (SPEC §7). A list query: it reads the outbox
projection, which may lag the ledger by the projection delay."""
from __future__ import annotations

from typing import Annotated

import strawberry

from schema import pages, permissions
from schema.arguments import UserId
from schema.context import Info
from schema.permissions import Root
from schema.types.subscriptions import Notification


@strawberry.type
class NotificationsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "notifications",
        "The user's newest notifications, newest first, from the outbox read model: one caused by a write "
        f"may take a moment (the projection delay) to appear. {pages.NOTIFICATIONS.describe()}",
        errors=("BAD_USER_INPUT",),
    ), deprecation_reason="Use notificationsPage: the same list, with a cursor to reach older notifications.")
    async def notifications(
        self, info: Info, user_id: UserId = None,
        first: Annotated[int | None, strawberry.argument(description="How many.")] = pages.NOTIFICATIONS.default,
    ) -> list[Notification]:
        services = info.context.services
        user = permissions.subject(info, user_id)
        rows = await services.run_sync(services.notifications.recent, user, pages.NOTIFICATIONS.of(first))
        return [Notification.of(row) for row in rows]
