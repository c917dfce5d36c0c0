"""A per-caller limit on the mutations that move money or call a payment gateway.

What is limited (`LIMITED_FIELDS`): every root mutation that charges, refunds or
otherwise sends a request to a gateway: registering a card (the gateway issues a
billing key), buying points, subscribing, changing or canceling a plan (proration
charges and refunds), switching a subscription's card (a charge when it is past
due), refunds, and the sandbox's outcome switch. Reads, point spends and the other
ledger-only mutations are not: they cost the gateway nothing and the database
answers them quickly. `runScheduledJobs` and `advanceTestClock` are not either:
their work is what is due, not what the caller asks for, and running them again
finds nothing new.

Who is limited, and by what key: the token's subject, in one of two buckets.
ADMIN tokens have their own limit (`SUBLEDGER_RATE_LIMIT_ADMIN`, higher by
default: support staff refund in bursts); USER tokens have
`SUBLEDGER_RATE_LIMIT`. One noisy user never slows another. Tokens with
neither scope (ANALYST, AUDITOR, CRON, SYSTEM) are not counted: the permission
table (`schema/permissions.py`) refuses every limited field to them before any
gateway is called. Nor is a request without a valid token: its resolvers
answer UNAUTHENTICATED.

Where it runs: a Strawberry `SchemaExtension` around execution (`on_execute`),
after parsing and validation, before any resolver. A document is counted once,
with one unit per limited root field (aliases and fragments included), so an
over-limit document is refused whole and changes nothing: no resolver of it
runs. A resolver-level guard would instead let a document's first fields run
and refuse the rest; a field extension would need every limited resolver to
opt in. Attempts that end in a refusal of another kind (FORBIDDEN, a declined
card) still count: probing costs as much as paying.

The answer: `RATE_LIMITED` with `extensions.retryAfter` (whole seconds), HTTP
status 429 and a `Retry-After` header with the same number.

Storage: the `limits` library's moving window, in Redis when
`SUBLEDGER_REDIS_URL` is set (so every API process shares one count), else in
the process's memory (`schema/rate_limit_memory.py`: limits' own, its clean-up
paced). If Redis cannot be reached the call is let through and a warning is
logged: an outage of the limiter must not stop people paying.
"""
from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.storage import storage_from_string
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from strawberry.extensions import SchemaExtension

from domain.errors import DomainError
from schema.auth import Caller
from schema.rate_limit_memory import PacedMemoryStorage

log = structlog.get_logger("subledger.rate_limit")

LIMITED_FIELDS = frozenset(
    {
        "registerPaymentMethod",
        "beginPaymentMethodRegistration",
        "purchasePoints",
        "subscribe",
        "changePlan",
        "cancelSubscription",
        "updateSubscriptionPaymentMethod",
        "refundPayment",
        "setSandboxOutcome",
    }
)
OFF = frozenset({"", "off", "none", "0"})
#: Redis answers within this or the call goes through unlimited (and a warning is logged).
REDIS_TIMEOUT_SECONDS = 0.5


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many payment operations: try again in {retry_after} s", retryAfter=retry_after
        )
        self.retry_after = retry_after


def parse_limit(value: str | None) -> RateLimitItem | None:
    """'30/minute', '2/second', '100 per hour'; empty or 'off' for no limit. ValueError if malformed."""
    if value is None or value.strip().lower() in OFF:
        return None
    try:
        return parse(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit (write it like '30/minute' or 'off')") from None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0


class MoneyRateLimiter:
    """Counts limited operations per caller in a moving window."""

    def __init__(
        self, user_limit: str | None, admin_limit: str | None, redis_url: str | None = None,
        webhook_limit: str | None = None,
    ) -> None:
        self.user_limit = parse_limit(user_limit)
        self.admin_limit = parse_limit(admin_limit)
        #: Provider notifications (`POST /webhooks/...`, no token) per sending address.
        self.webhook_limit = parse_limit(webhook_limit)
        self.shared = bool(redis_url)
        self.storage: Storage = (
            storage_from_string(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="subledger-rate",
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            if redis_url
            else PacedMemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(self.storage)

    def bucket(self, caller: Caller) -> tuple[str, RateLimitItem] | None:
        if caller.has("admin"):
            return ("admin", self.admin_limit) if self.admin_limit else None
        if caller.has("user"):
            return ("user", self.user_limit) if self.user_limit else None
        return None

    async def take(self, caller: Caller, cost: int) -> Decision:
        """Count `cost` operations for the caller, or refuse them all."""
        bucket = self.bucket(caller)
        if bucket is None or cost <= 0:
            return Decision(True)
        name, item = bucket
        return await self._hit(item, name, caller.user_id, cost)

    async def take_notification(self, address: str) -> Decision:
        """Count one provider notification from `address` (the webhook has no caller)."""
        if self.webhook_limit is None:
            return Decision(True)
        return await self._hit(self.webhook_limit, "webhook", address, 1)

    async def _hit(self, item: RateLimitItem, name: str, key: str, cost: int) -> Decision:
        try:
            if await self.limiter.hit(item, name, key, cost=cost):
                return Decision(True)
            stats = await self.limiter.get_window_stats(item, name, key)
        except StorageError as error:
            log.warning("rate_limit_unavailable", error=type(error.storage_error).__name__)
            return Decision(True)
        wait = stats.reset_time - time.time() if cost <= item.amount else item.get_expiry()
        retry_after = max(1, math.ceil(wait))
        log.info("rate_limited", user_id=key, bucket=name, cost=cost, retry_after=retry_after)
        return Decision(False, retry_after)

    async def aclose(self) -> None:
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()


def limited_fields(document: DocumentNode, operation_name: str | None) -> int:
    """How many limited root fields a mutation document runs (0 for queries)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.MUTATION:
        return 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def count(selections: SelectionSetNode, seen: frozenset[str]) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += selection.name.value in LIMITED_FIELDS
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    total += count(fragments[name].selection_set, seen | {name})
        return total

    return count(operation.selection_set, frozenset())


class RateLimitExtension(SchemaExtension):
    """Refuses a mutation document over the caller's limit before any of its resolvers runs."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        refusal = await self._refusal(context)
        if refusal is not None:
            response = context.context.get("response")
            if response is not None:
                response.status_code = 429
                response.headers["Retry-After"] = str(refusal.retry_after)
            context.result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(refusal.message, original_error=refusal)]
            )
        yield

    @staticmethod
    async def _refusal(context: Any) -> RateLimited | None:
        request_context = context.context
        services = getattr(request_context, "services", None)
        limiter: MoneyRateLimiter | None = getattr(services, "rate_limiter", None)
        if limiter is None or context.graphql_document is None:
            return None
        cost = limited_fields(context.graphql_document, context.operation_name)
        if cost == 0:
            return None
        try:
            caller = request_context.caller
        except DomainError:
            return None  # no valid token: the resolvers answer UNAUTHENTICATED
        decision = await limiter.take(caller, cost)
        return None if decision.allowed else RateLimited(decision.retry_after)
