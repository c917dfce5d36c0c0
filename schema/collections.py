"""Collections: the subscriptions whose renewal is failing (PAST_DUE) or has stopped
(SUSPENDED), with what an operator needs to chase them: the last decline, how many
attempts failed in a row and when the next retry is due. The console's Collections
page reads this; the list comes from the subscriptions read model (it may lag by the
projection delay), each subscription and its payments from the ledger."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from domain.subscription import PAST_DUE, SUSPENDED
from domain.subscription import Subscription as SubscriptionAggregate
from schema import pages, permissions
from schema.context import Info
from schema.paged_lists import After, first_argument
from schema.permissions import Root
from schema.scalars import DateTime
from schema.types.connections import NEXT_CURSOR
from schema.types.enums import DeclineCode
from schema.types.subscriptions import Subscription


@strawberry.type(description="A PAST_DUE or SUSPENDED subscription and its failing renewal (collections).")
class CollectionCase:
    subscription: Subscription = strawberry.field(description="The subscription, as the ledger has it now.")
    last_decline_code: DeclineCode | None = strawberry.field(
        description="Why its newest FAILED payment failed (null when no failed payment is recorded)."
    )
    last_failed_at: DateTime | None = strawberry.field(description="When that newest FAILED payment was recorded.")
    attempts: int = strawberry.field(description="Charge attempts that failed in a row (Subscription.consecutiveFailures).")
    next_retry_at: DateTime | None = strawberry.field(
        description="When the next attempt is due (PAST_DUE); null when SUSPENDED: no retry until the payment method changes."
    )


@strawberry.type(description="A page of collection cases (collections).")
class CollectionCaseConnection:
    items: list[CollectionCase] = strawberry.field(description="The page, newest subscription first.")
    next_cursor: str | None = strawberry.field(description=NEXT_CURSOR)


def _case(sub: SubscriptionAggregate, payments: list[Any], info: Info, now: datetime) -> CollectionCase:
    failed = [p for p in payments if p is not None and p.status == "FAILED"]
    last = max(failed, key=lambda p: p.created_at, default=None)
    return CollectionCase(
        subscription=Subscription.of(sub, info, now),
        last_decline_code=DeclineCode(last.failure_code) if last is not None and last.failure_code else None,
        last_failed_at=last.created_at if last is not None else None,
        attempts=sub.consecutive_failures,
        next_retry_at=sub.next_charge_at if sub.status == PAST_DUE else None,
    )


@strawberry.type
class CollectionsQuery:
    @strawberry.field(description=permissions.described(
        Root.QUERY, "collections",
        "Every PAST_DUE and SUSPENDED subscription, newest subscription first, a page at a time, with its last "
        "decline code, failed attempts in a row and next retry. Listed from the subscriptions read model: a "
        "subscription that just failed may take a moment (the projection delay) to appear; each case is read "
        "from the ledger, and one that has recovered meanwhile is left out (a page may then hold fewer than "
        f"`first`). {pages.COLLECTIONS.describe()}",
        errors=("BAD_USER_INPUT",),
    ))
    async def collections(
        self, info: Info,
        first: Annotated[int | None, first_argument(pages.COLLECTIONS)] = pages.COLLECTIONS.default,
        after: After = None,
    ) -> CollectionCaseConnection:
        permissions.caller(info)
        services = info.context.services
        page = await services.run_sync(
            services.subscriptions.collection_page, (PAST_DUE, SUSPENDED), pages.COLLECTIONS.of(first), after
        )
        now = services.clock.now()
        cases = []
        for sub_id in page.items:
            sub = await services.run_sync(services.ledger.subscription, sub_id)
            if sub is None or sub.status not in (PAST_DUE, SUSPENDED):
                continue  # the read model lags: the ledger has moved on
            payments = [await services.run_sync(services.ledger.payment, pay_id) for pay_id in sub.payment_ids]
            cases.append(_case(sub, payments, info, now))
        return CollectionCaseConnection(items=cases, next_cursor=page.next_cursor)
