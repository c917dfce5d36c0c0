"""The notifications outbox query (SPEC §7) and an operator's resend. The list query reads
the outbox projection, which may lag the ledger by the projection delay."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import strawberry

from domain.errors import Conflict, NotFound
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


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(description=permissions.described(Root.MUTATION, "resendNotification", (
        "Send a FAILED or UNCONFIRMED notification again: it becomes RETRYING, due at once, for one more attempt "
        "by the sender (an UNCONFIRMED one may then reach the user twice: check the mail server's log first; "
        "docs/email.md). NOT_FOUND for an unknown id; CONFLICT in any other delivery status (nothing changes)."
    )))
    async def resend_notification(
        self, info: Info,
        notification_id: Annotated[strawberry.ID, strawberry.argument(description="The notification.")],
    ) -> Notification:
        permissions.caller(info)
        services = info.context.services
        found = await services.run_sync(services.notifications.one, str(notification_id))
        if found is None:
            raise NotFound(f"notification {notification_id} not found")
        if not await services.run_sync(services.notification_sends.resend, found["id"], datetime.now(timezone.utc)):
            status = found["delivery_state"].value
            raise Conflict(f"notification {notification_id} is {status}: only FAILED or UNCONFIRMED ones are resent")
        return Notification.of(await services.run_sync(services.notifications.one, found["id"]))
