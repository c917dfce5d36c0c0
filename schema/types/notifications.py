"""Where a notification stands in its delivery, as the API shows it (docs/email.md)."""
from __future__ import annotations

import enum

import strawberry

from projections.notification_deliveries import DeliveryState


@strawberry.enum(description="Where a notification stands in its delivery by e-mail (docs/email.md).")
class NotificationDeliveryStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description=(
        "Not tried yet; also what production shows while no SMTP server is configured."))
    SENDING = strawberry.enum_value("SENDING", description="A sender is handing it to the SMTP server now.")
    RETRYING = strawberry.enum_value("RETRYING", description=(
        "The server refused it or could not be reached; it is tried again at nextAttemptAt."))
    SENT = strawberry.enum_value("SENT", description="The SMTP server accepted it, at sentAt. It is never sent again.")
    LOGGED = strawberry.enum_value("LOGGED", description=(
        "Development without SMTP: written to the service's log, not e-mailed."))
    SKIPPED = strawberry.enum_value("SKIPPED", description=(
        "Not sent: the user has no e-mail address on record, or their personal data was erased."))
    FAILED = strawberry.enum_value("FAILED", description="Refused or undeliverable at every attempt; not tried again.")
    UNCONFIRMED = strawberry.enum_value("UNCONFIRMED", description=(
        "The connection was lost while the server was receiving it: it may have been delivered, so it is not "
        "sent again (at most once)."))


def delivery_status(state: DeliveryState) -> NotificationDeliveryStatus:
    if state is DeliveryState.HANDING_OVER:
        return NotificationDeliveryStatus.SENDING
    return NotificationDeliveryStatus(state.value)
