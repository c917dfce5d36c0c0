"""The served schema: every area's queries and mutations merged, with the
request limits (depth, aliases, body size) and the parse and validation caches."""
from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.tools import merge_types

from schema.analytics import AnalyticsQuery
from schema.audit import AuditMutation, AuditQuery
from schema.errors import log_unexpected
from schema.metrics import CommandLatency
from schema.rate_limit import RateLimitExtension
from schema.scalars import SCALAR_MAP
from schema.operations import OperationsMutation, OperationsQuery
from schema.paged_lists import PagedListsQuery
from schema.payments import PaymentsMutation, PaymentsQuery
from schema.reconciliation import ReconciliationQuery
from schema.notifications import NotificationsMutation, NotificationsQuery
from schema.subscriptions import SubscriptionsMutation, SubscriptionsQuery
from schema.wallet import WalletMutation, WalletQuery
from schema.webhooks import WebhooksMutation, WebhooksQuery

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 4000

Query = merge_types(
    "Query",
    (OperationsQuery, PaymentsQuery, WalletQuery, SubscriptionsQuery, NotificationsQuery, AuditQuery, AnalyticsQuery,
     ReconciliationQuery, WebhooksQuery, PagedListsQuery),
)
Mutation = merge_types(
    "Mutation",
    (PaymentsMutation, WalletMutation, SubscriptionsMutation, OperationsMutation, AuditMutation, WebhooksMutation,
     NotificationsMutation),
)
# merge_types takes no description: set it on the merged definitions.
Query.__strawberry_definition__.description = (
    "Reads. Single objects (subscription, currentSubscription, wallet, paymentMethods) answer from the ledger "
    "(read-your-writes); lists (payments, subscriptions, notifications, wallet transactions, analytics) come "
    "from read models that may lag the ledger by the projection delay (see `projections`). Every list pages "
    "the same way: `first` and `after` in, `items` and `nextCursor` out (paymentsPage, subscriptionsPage, "
    "notificationsPage, eventsPage, Wallet.transactions)."
)
Mutation.__strawberry_definition__.description = (
    "Changes. Each answers from the ledger it just wrote; a refused call changes nothing (a declined charge is "
    "still recorded as a FAILED payment). Money mutations take an optional idempotencyKey."
)


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        # Refusals are answers, not incidents: log only what will be answered INTERNAL.
        log_unexpected(errors)


#: The depth and alias rules, built once. Each limiter creates a new rule class when it is
#: constructed, and ValidationCache keys on the rule classes: built per request (as
#: `lambda: QueryDepthLimiter(...)` would), no document is ever found in the cache and every
#: request is validated from scratch.
_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


class DepthAndAliasLimits(AddValidationRules):
    """Strawberry's depth and alias limiters, their rules shared by every request."""

    def __init__(self) -> None:
        super().__init__(list(_LIMIT_RULES))


def build_schema(first: tuple[Any, ...] = ()) -> Schema:
    """The served schema; `first` are extensions that wrap all others (the tracing spans)."""
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            *first,
            DepthAndAliasLimits,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ParserCache,
            ValidationCache,
            CommandLatency,
            RateLimitExtension,
        ],
    )


schema = build_schema()
