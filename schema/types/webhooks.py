"""Webhook types (docs/webhooks.md). The signing secret appears only in `WebhookEndpointSecret`,
the answer of the two mutations that make one."""
from __future__ import annotations

import enum
import json

import strawberry

from domain import webhooks as rules
from projections.webhook_deliveries import Attempt, Delivery
from schema.scalars import JSON, DateTime
from subledger.webhook_endpoints import Endpoint


@strawberry.enum(description="What a webhook tells; the payload's `type` is the lower-case dotted form shown per value.")
class WebhookEventType(enum.Enum):
    PAYMENT_SUCCEEDED = strawberry.enum_value("payment.succeeded", description="`payment.succeeded`: a charge was paid (subscription, proration or points).")
    PAYMENT_FAILED = strawberry.enum_value("payment.failed", description="`payment.failed`: a charge was declined or could not be sent.")
    REFUND_SUCCEEDED = strawberry.enum_value("refund.succeeded", description="`refund.succeeded`: the provider refunded (part of) a payment.")
    REFUND_FAILED = strawberry.enum_value("refund.failed", description="`refund.failed`: the provider refused a refund.")
    SUBSCRIPTION_CREATED = strawberry.enum_value("subscription.created", description="`subscription.created`: a user subscribed.")
    SUBSCRIPTION_STATUS_CHANGED = strawberry.enum_value("subscription.status_changed", description="`subscription.status_changed`: a subscription's status changed (e.g. TRIALING to ACTIVE, ACTIVE to PAST_DUE, CANCELED).")
    SUBSCRIPTION_PLAN_CHANGED = strawberry.enum_value("subscription.plan_changed", description="`subscription.plan_changed`: a subscription moved to another plan (at once, or at the period's end).")
    POINTS_PURCHASED = strawberry.enum_value("points.purchased", description="`points.purchased`: bought points were credited to a wallet.")
    POINTS_EXPIRED = strawberry.enum_value("points.expired", description="`points.expired`: points of a lot expired.")

    def domain(self) -> rules.WebhookEventType:
        return rules.WebhookEventType(self.value)

    @classmethod
    def of(cls, value: rules.WebhookEventType | str) -> WebhookEventType:
        return cls(value.value if isinstance(value, rules.WebhookEventType) else value)


@strawberry.enum(description="Where a webhook delivery stands.")
class WebhookDeliveryStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Waiting for its first attempt or for a retry (`nextAttemptAt`).")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The endpoint answered with a 2xx status.")
    FAILED = strawberry.enum_value("FAILED", description="No 2xx within the retry window; only `redeliverWebhook` sends it again.")


@strawberry.type(description="A URL that receives signed webhooks (ADMIN). Never shows its signing secret.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="The endpoint's id (`we_...`).")
    url: str = strawberry.field(description="Where events are POSTed.")
    description: str | None = strawberry.field(description="A note for operators.")
    event_types: list[WebhookEventType] = strawberry.field(description="The event types sent to this endpoint.")
    enabled: bool = strawberry.field(description="False: nothing is sent; deliveries wait and events meanwhile are not sent.")
    created_at: DateTime = strawberry.field(description="When it was registered; it receives events from then on.")
    secret_rotated_at: DateTime | None = strawberry.field(description="When its signing secret was last replaced.")

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(endpoint.id), url=endpoint.url, description=endpoint.description,
            event_types=[WebhookEventType.of(t) for t in endpoint.event_types], enabled=endpoint.enabled,
            created_at=endpoint.created_at, secret_rotated_at=endpoint.secret_rotated_at,
        )


@strawberry.type(description="An endpoint with its signing secret: answered once, by the mutation that made the secret.")
class WebhookEndpointSecret:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(description=(
        "The signing secret (`whsec_...`): verify `Subledger-Signature` with it. Shown only here; "
        "store it now, it cannot be read again (rotate it to get a new one)."
    ))


@strawberry.type(description="One POST of a delivery.")
class WebhookAttempt:
    number: int = strawberry.field(description="1 for the first attempt.")
    at: DateTime = strawberry.field(description="When it was made (the service clock).")
    response_code: int | None = strawberry.field(description="The endpoint's HTTP status; null when none came (timeout, connection error).")
    error: str | None = strawberry.field(description="Why it did not count as received; null for a 2xx.")
    duration_ms: int = strawberry.field(description="Milliseconds from sending to the answer (or the error).")

    @classmethod
    def of(cls, attempt: Attempt) -> WebhookAttempt:
        return cls(number=attempt.number, at=attempt.at, response_code=attempt.response_code, error=attempt.error,
                   duration_ms=attempt.duration_ms)


@strawberry.type(description="One event for one endpoint, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="The delivery's id (`wd_...`), the same for every attempt.")
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint it goes to.")
    event_id: strawberry.ID = strawberry.field(description="The event's id (`evt_...`), also sent as `Subledger-Event-Id`: deduplicate by it.")
    event_type: WebhookEventType = strawberry.field(description="The event's type.")
    status: WebhookDeliveryStatus = strawberry.field(description="Where it stands.")
    next_attempt_at: DateTime | None = strawberry.field(description="When the next attempt is due (PENDING only).")
    created_at: DateTime = strawberry.field(description="When the event was fanned out to the endpoint.")
    payload: JSON = strawberry.field(description="The JSON body sent: id, type, created_at, data.")
    attempts: list[WebhookAttempt] = strawberry.field(description="Every attempt, oldest first.")

    @classmethod
    def of(cls, delivery: Delivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(delivery.id), endpoint_id=strawberry.ID(delivery.endpoint_id),
            event_id=strawberry.ID(delivery.event_id), event_type=WebhookEventType.of(delivery.event_type),
            status=WebhookDeliveryStatus(delivery.status.value),
            next_attempt_at=delivery.next_attempt_at if delivery.status is rules.DeliveryStatus.PENDING else None,
            created_at=delivery.created_at, payload=json.loads(delivery.body),
            attempts=[WebhookAttempt.of(a) for a in delivery.history],
        )


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="http:// or https:// (https:// only in production); no user:password@.")
    event_types: list[WebhookEventType] = strawberry.field(description="At least one event type.")
    description: str | None = strawberry.field(default=None, description="A note for operators, up to 200 characters.")


@strawberry.type(description="A page of webhook deliveries (webhookDeliveriesPage).")
class WebhookDeliveryConnection:
    items: list[WebhookDelivery] = strawberry.field(description="The page, newest event first.")
    next_cursor: str | None = strawberry.field(
        description="Opaque cursor for the next page (pass it as `after`); null on the last page."
    )
