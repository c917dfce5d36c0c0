"""What a resolver can reach: the caller and the application's services.

`Services` is the schema's declaration of what it needs; the composition root
(`subledger/app.py`) builds one from settings.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from strawberry.types import Info as StrawberryInfo

from domain.payments.flows import Billing
from domain.ledger import Ledger
from domain.ports import Clock
from schema.auth import Caller, decode_token


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
    extra: dict[str, Any] = field(default_factory=dict)


class Context(dict):
    """Strawberry's context: a dict (so strawberry's own keys still work) with the
    caller decoded lazily, because `catalog` and `clock` need no token."""

    def __init__(self, services: Services, authorization: str | None, **rest: Any) -> None:
        super().__init__(rest)
        self.services = services
        self.authorization = authorization

    @cached_property
    def caller(self) -> Caller:
        if self.services.tokens is not None:
            return self.services.tokens.caller(self.authorization)
        return decode_token(self.authorization, self.services.jwt_secret)


Info = StrawberryInfo[Context, None]
