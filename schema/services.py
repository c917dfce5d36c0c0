"""What the schema's resolvers are handed: the application's services, built by
`subledger/core.py` for every process; `subledger/app.py` adds what only requests use
(`rate_limiter`, `tokens`, `contacts`: None in a process that serves no GraphQL).

Apart from `schema/context.py` (the per-request context, which needs Strawberry), so a
worker or projector can build the same services without importing the GraphQL stack.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from domain.payments.flows import Billing
from domain.ledger import Ledger
from domain.ports import Clock


@dataclass
class Services:
    ledger: Ledger
    billing: Billing
    clock: Clock
    run_sync: Callable[..., Awaitable[Any]]
    jwt_secret: str
    history: Any  # projections.wallet_history.WalletHistoryQueries
    payments: Any  # projections.payments.PaymentsQueries
    projections: Any  # callable returning the projections' status rows
    jobs: Any  # workers.jobs.Jobs
    service_token_secret: str = ""
    subscriptions: Any = None  # projections.subscriptions queries
    subscription_billing: Any = None  # domain.subscription_billing.SubscriptionBilling
    notifications: Any = None  # projections.notifications queries (the outbox)
    notification_sends: Any = None  # projections.notification_deliveries.NotificationDeliveries (resend)
    read_models: Any = None  # projections.read_models.ReadModels (status, rebuild, verify, events)
    contacts: Any = None  # schema.contacts.ContactRecorder (contact details from the token's claims)
    analytics: Any = None  # projections.analytics queries (business metrics)
    reconcile: Any = None  # async (since, until) -> domain.payments.reconcile.Report
    rate_limiter: Any = None  # schema.rate_limit.MoneyRateLimiter (None: no limit)
    tokens: Any = None  # schema.jwks.JwksTokens when SUBLEDGER_JWKS_URL is set (None: HS256 with jwt_secret)
    webhooks: Any = None  # workers.webhooks.WebhookDispatcher (endpoints, deliveries, sending)
    timezone: str = "Asia/Seoul"  # SUBLEDGER_TIMEZONE, as Query.clock reports it
    extra: dict[str, Any] = field(default_factory=dict)
