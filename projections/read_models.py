"""Everything analysts and auditors do with the read models, in one place for
the API and the CLI: status, rebuild, verify, and the ledger's events."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput
from projections.copies import BULK_BATCH_SIZE, Progress
from projections.database import ViewDatabase
from projections.keyset import Keyset, Page, page_of, scope_of
from projections.ledger_log import MAX_PAGE, LedgerEntry, LedgerLog, check_page
from projections.rebuild import DROP_GRACE_SECONDS, Rebuilder
from projections.status import status
from projections.verify import Report, verify

#: `eventsPage` cursors: the ledger's global order, by position.
CURSORS = Keyset("events")


class ReadModels:
    def __init__(
        self,
        ledger: Any,
        view_db: ViewDatabase,
        runners: Sequence[Any],
        *,
        batch_size: int = BULK_BATCH_SIZE,
        grace_seconds: float = DROP_GRACE_SECONDS,
        create: bool = True,
    ) -> None:
        self.ledger = ledger
        self.view_db = view_db
        self.runners = list(runners)
        self.batch_size = batch_size
        self.log = LedgerLog(ledger, view_db)
        self.rebuilder = Rebuilder(ledger, view_db, self.runners, batch_size=batch_size, grace_seconds=grace_seconds,
                                   create=create)

    def runner(self, name: str) -> Any:
        return self.rebuilder.select([name])[0]

    def status(self) -> list[dict[str, Any]]:
        return status(self.runners)

    def rebuild(
        self, names: Sequence[str] | None = None, *, progress: Progress | None = None, wait_for_drop: bool = False
    ) -> list[dict[str, Any]]:
        return self.rebuilder.rebuild(names, progress=progress, wait_for_drop=wait_for_drop)

    def verify(self, progress: Callable[[str, int, int], None] | None = None) -> Report:
        return verify(self.ledger, self.view_db, self.runners, batch_size=self.batch_size, progress=progress)

    # ------------------------------------------------------------ the ledger's events
    def user_aggregates(self, user_id: str) -> list[str]:
        return [row["aggregate_id"] for row in self.runner("aggregates").current().of_user(self.view_db, user_id)]

    def events(
        self, *, aggregate_id: str | None = None, user_id: str | None = None, after: int | None = None, first: int = 100
    ) -> list[LedgerEntry]:
        """A page of the ledger in global order, optionally of one aggregate and/or one user's aggregates."""
        return self.log.page(after, first, self._chosen(aggregate_id, user_id))

    def events_page(
        self, *, aggregate_id: str | None = None, user_id: str | None = None, first: int = 100, after: str | None = None
    ) -> Page[LedgerEntry]:
        """`events` as a cursor page: oldest first, after the cursor `after` (keyset on the position)."""
        check_page(None, first)
        scope = scope_of(aggregate_id, user_id)
        (start,) = CURSORS.decode(after, scope) if after is not None else (0,)
        entries = self.log.read(int(start), first + 1, self._chosen(aggregate_id, user_id))
        return page_of(entries, first, lambda entry: CURSORS.encode(scope, entry.position))

    def _chosen(self, aggregate_id: str | None, user_id: str | None) -> list[str] | None:
        """The aggregates the filters name (None: every aggregate)."""
        chosen: list[str] | None = None
        if aggregate_id is not None:
            try:
                chosen = [str(UUID(aggregate_id))]
            except ValueError:
                raise InvalidInput(f"aggregateId {aggregate_id!r} is not an aggregate id") from None
        if user_id is not None:
            owned = self.user_aggregates(user_id)
            chosen = owned if chosen is None else [a for a in chosen if a in set(owned)]
        return chosen

    def all_user_events(self, user_id: str) -> list[LedgerEntry]:
        """Every event of the user's aggregates, oldest first (exports)."""
        aggregates = self.user_aggregates(user_id)
        found: list[LedgerEntry] = []
        while True:
            page = self.log.page(found[-1].position if found else 0, MAX_PAGE, aggregates)
            found.extend(page)
            if len(page) < MAX_PAGE:
                return found

    def close(self) -> None:
        self.rebuilder.close()
