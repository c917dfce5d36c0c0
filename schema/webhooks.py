"""Webhook endpoints and deliveries (ADMIN; docs/webhooks.md)."""
from __future__ import annotations

import time
from typing import Annotated

import strawberry

from schema import pages, permissions
from schema.context import Info
from schema.permissions import Root
from schema.types.webhooks import (
    CreateWebhookEndpointInput, WebhookDelivery, WebhookDeliveryConnection, WebhookDeliveryStatus, WebhookEndpoint,
    WebhookEndpointSecret,
)
from domain.webhooks import DeliveryStatus, known_id

ERRORS = "Errors: FORBIDDEN for any other scope"


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description=permissions.described(Root.QUERY, "webhookEndpoints", (
        "Every registered webhook endpoint, oldest first; never their signing secrets."
    )))
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        permissions.caller(info)
        webhooks = info.context.services.webhooks
        return [WebhookEndpoint.of(e) for e in await info.context.services.run_sync(webhooks.endpoints.all)]

    @strawberry.field(description=permissions.described(Root.QUERY, "webhookDeliveries", (
        "Webhook deliveries with their attempts, newest event first, optionally of one endpoint, one event or one "
        f"status. {pages.WEBHOOK_DELIVERIES.describe()}"
    )), deprecation_reason="Use webhookDeliveriesPage: the same list, a page at a time with a cursor.")
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this endpoint's.")] = None,
        event_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this event's.")] = None,
        status: Annotated[WebhookDeliveryStatus | None, strawberry.argument(description="Only in this status.")] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = pages.WEBHOOK_DELIVERIES.default,
    ) -> list[WebhookDelivery]:
        permissions.caller(info)
        services = info.context.services
        if any("\x00" in str(value) for value in (endpoint_id, event_id) if value is not None):
            return []  # no row has such an id (and PostgreSQL cannot compare with one)
        found = await services.run_sync(
            services.webhooks.deliveries.page,
            str(endpoint_id) if endpoint_id is not None else None,
            str(event_id) if event_id is not None else None,
            DeliveryStatus(status.value) if status is not None else None,
            pages.WEBHOOK_DELIVERIES.of(first),
        )
        return [WebhookDelivery.of(d) for d in found]

    @strawberry.field(description=permissions.described(Root.QUERY, "webhookDeliveriesPage", (
        "Webhook deliveries with their attempts, newest event first, a page at a time (pass a page's nextCursor "
        "as `after`), optionally of one endpoint, one event or one status. A cursor of other filters is refused. "
        f"{pages.WEBHOOK_DELIVERIES_PAGE.describe()}"
    ), errors=("BAD_USER_INPUT",)))
    async def webhook_deliveries_page(
        self,
        info: Info,
        endpoint_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this endpoint's.")] = None,
        event_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this event's.")] = None,
        status: Annotated[WebhookDeliveryStatus | None, strawberry.argument(description="Only in this status.")] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = pages.WEBHOOK_DELIVERIES_PAGE.default,
        after: Annotated[str | None, strawberry.argument(
            description="The nextCursor of the previous page; null for the first page."
        )] = None,
    ) -> WebhookDeliveryConnection:
        permissions.caller(info)
        services = info.context.services
        size = pages.WEBHOOK_DELIVERIES_PAGE.of(first)
        if any("\x00" in str(value) for value in (endpoint_id, event_id) if value is not None):
            return WebhookDeliveryConnection(items=[], next_cursor=None)  # no row has such an id
        page = await services.run_sync(
            services.webhooks.deliveries.page_after,
            str(endpoint_id) if endpoint_id is not None else None,
            str(event_id) if event_id is not None else None,
            DeliveryStatus(status.value) if status is not None else None,
            size,
            after,
        )
        return WebhookDeliveryConnection(items=[WebhookDelivery.of(d) for d in page.items], next_cursor=page.next_cursor)


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(description=permissions.described(Root.MUTATION, "createWebhookEndpoint", (
        "Register an endpoint; it receives the chosen events from now on, signed with the secret answered here "
        f"(shown this once). {ERRORS}; BAD_USER_INPUT for a URL that is not http(s) (https only in production), "
        "has no host or carries a password, and for an empty eventTypes."
    )))
    async def create_webhook_endpoint(
        self, info: Info,
        input: Annotated[CreateWebhookEndpointInput, strawberry.argument(description="The URL and the event types.")],
    ) -> WebhookEndpointSecret:
        permissions.caller(info)
        services = info.context.services
        head = await services.run_sync(services.ledger.recorder.max_notification_id) or 0
        endpoint, secret = await services.run_sync(
            services.webhooks.endpoints.create, input.url, [t.domain() for t in input.event_types], input.description,
            head, services.clock.now(),
        )
        return WebhookEndpointSecret(endpoint=WebhookEndpoint.of(endpoint), secret=secret)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "setWebhookEndpointEnabled", (
        "Enable or disable an endpoint. While disabled nothing is sent to it and the events of that time are "
        f"skipped; its pending deliveries wait. {ERRORS}; NOT_FOUND for an unknown id."
    )))
    async def set_webhook_endpoint_enabled(
        self, info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")],
        enabled: Annotated[bool, strawberry.argument(description="True to send to it, false to stop.")],
    ) -> WebhookEndpoint:
        permissions.caller(info)
        services = info.context.services
        endpoint_id = known_id(str(id), "webhook endpoint")
        return WebhookEndpoint.of(await services.run_sync(services.webhooks.endpoints.set_enabled, endpoint_id, enabled))

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "deleteWebhookEndpoint", (
        f"Delete an endpoint with its deliveries and their attempts; answers its id. {ERRORS}; NOT_FOUND for an "
        "unknown id."
    )))
    async def delete_webhook_endpoint(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")]
    ) -> strawberry.ID:
        permissions.caller(info)
        services = info.context.services
        await services.run_sync(services.webhooks.endpoints.delete, known_id(str(id), "webhook endpoint"))
        return id

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "rotateWebhookEndpointSecret", (
        "Replace an endpoint's signing secret; the new one (answered here, once) signs every attempt from now on "
        f"and the old one stops at once. {ERRORS}; NOT_FOUND for an unknown id."
    )))
    async def rotate_webhook_endpoint_secret(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")]
    ) -> WebhookEndpointSecret:
        permissions.caller(info)
        services = info.context.services
        endpoint, secret = await services.run_sync(
            services.webhooks.endpoints.rotate_secret, known_id(str(id), "webhook endpoint"), services.clock.now()
        )
        return WebhookEndpointSecret(endpoint=WebhookEndpoint.of(endpoint), secret=secret)

    @strawberry.mutation(description=permissions.described(Root.MUTATION, "redeliverWebhook", (
        "Send a delivery again (whatever its status) at the next pass, with the same body and event id, and a "
        f"fresh retry window. {ERRORS}; NOT_FOUND for an unknown id; CONFLICT while an attempt is in flight."
    )))
    async def redeliver_webhook(
        self, info: Info,
        delivery_id: Annotated[strawberry.ID, strawberry.argument(description="The delivery (`wd_...`).")],
    ) -> WebhookDelivery:
        permissions.caller(info)
        services = info.context.services
        delivery = await services.run_sync(
            services.webhooks.deliveries.redeliver, known_id(str(delivery_id), "webhook delivery"), services.clock.now(),
            int(time.time() * 1000),
        )
        return WebhookDelivery.of(delivery)
