"""Contact details from the token (SPEC §1 Auth): the optional `email` and `name`
claims are recorded as the user's contact details, once per change.

Every request may carry them, so the claims last recorded per user are kept
in memory and a request whose claims did not change costs nothing; the ledger
command compares again with the customer itself, so a stale memory (another
process recorded a change) never records twice, only looks once more.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from domain.errors import DomainError
from schema.auth import Caller

log = structlog.get_logger("subledger.contacts")

#: Users whose last claims are remembered; older ones are simply looked up again.
REMEMBERED = 100_000


class ContactRecorder:
    def __init__(self, ledger: Any, clock: Any, run_sync: Callable[..., Awaitable[Any]]) -> None:
        self.ledger = ledger
        self.clock = clock
        self.run_sync = run_sync
        self._seen: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

    async def observe(self, caller: Caller) -> None:
        claims = (caller.email, caller.name)
        if claims == (None, None) or self._seen.get(caller.user_id) == claims:
            return
        try:
            await self.run_sync(self.ledger.customers.record_contact_details, caller.user_id, *claims, self.clock.now())
        except DomainError as refused:
            # Malformed claims are the identity provider's problem, not a reason to fail the request.
            log.warning("contact_claims_ignored", user_id=caller.user_id, reason=refused.message)
        except Exception:
            # Not recorded this time (the next request tries again); the request itself goes on.
            log.exception("contact_details_not_recorded", user_id=caller.user_id)
            return
        self._seen[caller.user_id] = claims
        self._seen.move_to_end(caller.user_id)
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)

    def forget(self, user_id: str) -> None:
        self._seen.pop(user_id, None)
