"""The ledger: one eventsourcing Application holding every aggregate.

This module holds only what every command shares: loading, the conflict-retry
loop, the per-aggregate locks, idempotency keys (one mechanism:
`IdempotencyRecord`), group commit and the test clock. The commands live in one
class per area, each handed the ledger: `ledger.wallets`, `ledger.purchases`,
`ledger.customers`, `ledger.subscriptions`, and money's own home,
`ledger.payments` (`domain/payments`), to which the areas register what settling
a charge or releasing a refund means for them. Every command takes `now` from the
caller (the clock is a port), and saves all aggregates it changed in one
`save(...)`, i.e. one transaction.
"""
from __future__ import annotations

import random
import time
from copy import deepcopy
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import strtobool

from domain.catalog import Catalog
from domain.clock import TEST_CLOCK_ID, TestClockState
from domain.collecting import AggregatesFirst
from domain.customer import Customer
from domain.errors import Conflict, DomainError, InvalidInput
from domain.idempotency import Idempotency, IdempotencyRecord, fingerprint
from domain.ids import customer_id, idempotency_record_id, wallet_id
from domain.group_commit import GroupCommitter
from domain.locks import KeyedLocks
from domain.customer_commands import CustomerCommands
from domain.payments.book import PaymentBook
from domain.payments.payment import Payment
from domain.purchase_commands import PointsPurchases
from domain.personal_data import MemoryKeys, PersonalDataMapper, SealingEventStore
from domain.repository import LedgerRepository
from domain.ports import PersonalDataKeys
from domain.tracing import NO_SPAN, NO_TRACER, Span, Tracer, command_name
from domain.transactions import lineage_of, transaction_from_event
from domain.wallet import Wallet
from domain.subscription import Subscription
from domain.renewal_commands import PAYMENT_PURPOSES
from domain.subscription_commands import SubscriptionCommands
from domain.wallet_commands import WalletCommands

A = TypeVar("A", bound=Aggregate)


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` (the repository's projector, handed to
    `Repository.get`) without its `assert isinstance(event, CanMutateProtocol)` per event: a
    check against a runtime Protocol, about 20 µs each on a 2-core machine, paid for every
    event of every load. Every event here is an eventsourcing domain event, which mutates."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
R = TypeVar("R")

#: Attempts of one command against concurrent writers in other processes.
MAX_CONFLICT_RETRIES = 30


class Ledger(Application):
    name = "ledger"
    # Wallets grow without bound; snapshots keep loading them cheap. Customers are
    # never snapshotted: a snapshot would hold their personal data in clear,
    # beyond the reach of the per-user key that erasure deletes.
    snapshotting_intervals = {Wallet: 100, Subscription: 100}
    # A snapshot reloads its aggregate from the stored events; with eventsourcing's own
    # projector that load checks every event against a runtime Protocol (see `project`).
    snapshotting_projectors = {Wallet: project, Subscription: project}

    def __init__(
        self, env: dict[str, str], catalog: Catalog, tz: ZoneInfo, keys: PersonalDataKeys | None = None
    ) -> None:
        #: Keys of personal data (SPEC §7); needed by the mapper, which the base class builds.
        self.personal_keys = keys if keys is not None else MemoryKeys()
        super().__init__(env=env)
        self.catalog = catalog
        self.tz = tz
        self.locks = KeyedLocks()
        self.committer = GroupCommitter(self.save)
        #: Spans of commands (`ledger.command`) and their saves; a real one from the composition root.
        self.tracer: Tracer = NO_TRACER
        #: Called with the recordings of every save: in-process read models follow without polling.
        self.listeners: list[Callable[[list[Any]], None]] = []
        self.wallets = WalletCommands(self)
        self.purchases = PointsPurchases(self)
        self.customers = CustomerCommands(self)
        self.subscriptions = SubscriptionCommands(self)
        renewals = self.subscriptions.subscription_handler()
        self.payments = PaymentBook(
            self, {"points": self.purchases.points_handler(), **{purpose: renewals for purpose in PAYMENT_PURPOSES}}
        )

    def construct_mapper(self) -> PersonalDataMapper:
        plain = super().construct_mapper()
        return PersonalDataMapper(plain.transcoder, plain.compressor, plain.cipher, self.personal_keys)

    def construct_event_store(self) -> SealingEventStore:
        return SealingEventStore(mapper=self.mapper, recorder=self.recorder)

    def construct_repository(self) -> LedgerRepository:
        """eventsourcing's repository, configured as its own `construct_repository` does, that a
        load may tell to skip the snapshot table (domain/repository.py)."""
        cache_maxsize = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return LedgerRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(cache_maxsize) if cache_maxsize else None,
            fastforward=strtobool(self.env.get(self.AGGREGATE_CACHE_FASTFORWARD, "y")),
            fastforward_skipping=strtobool(self.env.get(self.AGGREGATE_CACHE_FASTFORWARD_SKIPPING, "n")),
            deepcopy_from_cache=strtobool(self.env.get(self.DEEPCOPY_FROM_AGGREGATE_CACHE, "y")),
        )

    def save(self, *objs: Any, **kwargs: Any) -> list[Any]:
        """eventsourcing's `Application.save`, step for step, with its events collected by
        `AggregatesFirst` (domain/collecting.py) instead of its runtime-Protocol checks. Its
        deprecated `notify(events)` hook is left out: it does nothing, and the ledger does
        not override it (`_notify` is where saves are followed)."""
        processing_event = AggregatesFirst()
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def _notify(self, recordings: list[Any]) -> None:
        super()._notify(recordings)
        for listener in self.listeners:
            listener(recordings)

    # ------------------------------------------------------------ loading
    def load(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            # Only the snapshotted types can have a snapshot to look for.
            aggregate = self.repository.get(
                aggregate_id, projector_func=project, snapshots=cls in self.snapshotting_intervals
            )
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            return None
        return aggregate

    def wallet(self, user_id: str) -> Wallet | None:
        return self.load(Wallet, wallet_id(user_id))

    def customer(self, user_id: str) -> Customer | None:
        return self.load(Customer, customer_id(user_id))

    def payment(self, payment_id: UUID | str) -> Payment | None:
        try:
            key = payment_id if isinstance(payment_id, UUID) else UUID(str(payment_id))
        except ValueError:
            return None
        return self.load(Payment, key)

    def subscription(self, subscription_id: Any) -> Subscription | None:
        try:
            key = subscription_id if isinstance(subscription_id, UUID) else UUID(str(subscription_id))
        except ValueError:
            return None
        return self.load(Subscription, key)

    def as_of(self, cls: type[A], aggregate_id: UUID, when: datetime) -> A | None:
        """The aggregate as it stood at business time `when` (its events with `at` ≤ when)."""
        version = None
        for stored in self.repository.event_store.get(aggregate_id):
            if getattr(stored, "at", stored.timestamp) > when:
                break
            version = stored.originator_version
        if version is None:
            return None
        aggregate = self.repository.get(aggregate_id, version=version, projector_func=project)
        return aggregate if isinstance(aggregate, cls) else None

    def wallet_or_new(self, user_id: str, now: datetime) -> Wallet:
        return self.wallet(user_id) or Wallet(user_id=_named(user_id), at=now)

    def customer_or_new(self, user_id: str, now: datetime) -> Customer:
        return self.customer(user_id) or Customer(user_id=_named(user_id), at=now)

    def wallet_transaction(self, user_id: str, version: int) -> dict[str, Any]:
        """The transaction recorded by the wallet's event at `version`."""
        events = list(self.repository.event_store.get(wallet_id(user_id), gt=version - 1, lte=version))
        transaction = transaction_from_event(events[0], user_id) if events else None
        if transaction is None:
            raise LookupError(f"wallet of {user_id} has no transaction at version {version}")
        return transaction

    def wallet_lineage(self, user_id: str, version: int) -> list[dict[str, Any]]:
        """The lots the wallet's event at `version` drew its points from."""
        events = list(self.repository.event_store.get(wallet_id(user_id), gt=version - 1, lte=version))
        return lineage_of(events[0]) if events else []

    # ------------------------------------------------------------ running commands
    def run(
        self,
        body: Callable[[], tuple[R, Iterable[Aggregate]]],
        *,
        lock: Iterable[Any] = (),
        idempotency: Idempotency | None = None,
        replay: Callable[[dict[str, Any]], R] | None = None,
        encode: Callable[[R], dict[str, Any]] | None = None,
    ) -> R:
        """Run `body` (load, decide, return (result, aggregates to save)) and save,
        retrying on a concurrent writer's conflict.

        With an idempotency key, a repeat of the same request answers
        `replay(stored)` and changes nothing; the record is saved in the same
        transaction as the command's effects.
        """
        if self.tracer is NO_TRACER:  # tracing off: not even a name is computed
            return self._run(body, NO_SPAN, lock, idempotency, replay, encode)
        with self.tracer.span("ledger.command", {"subledger.command": command_name(body)}) as span:
            return self._run(body, span, lock, idempotency, replay, encode)

    def _run(
        self,
        body: Callable[[], tuple[R, Iterable[Aggregate]]],
        span: Span,
        lock: Iterable[Any],
        idempotency: Idempotency | None,
        replay: Callable[[dict[str, Any]], R] | None,
        encode: Callable[[R], dict[str, Any]] | None,
    ) -> R:
        record_id = None
        if idempotency is not None and idempotency.key is not None:
            record_id = idempotency_record_id(idempotency.actor, idempotency.operation, idempotency.key)
            print_ = fingerprint(idempotency.operation, idempotency.request)
        with self.locks.hold(*lock, *([record_id] if record_id else [])):
            for attempt in range(MAX_CONFLICT_RETRIES):
                if record_id is not None:
                    existing = self.load(IdempotencyRecord, record_id)
                    if existing is not None:
                        assert replay is not None
                        span.set_attribute("subledger.idempotent_replay", True)
                        return replay(existing.replay(print_))
                # The first attempt decides on cached aggregates as they stand (domain/cache_trust.py).
                with self.repository.trusting_cache(attempt == 0) as unchecked:
                    try:
                        result, aggregates = body()
                    except DomainError:
                        # A refusal (too few points, a removed card) may rest on an old copy.
                        if unchecked and self._stale(unchecked):
                            continue
                        raise
                pending = [a for a in aggregates if a.pending_events]
                if unchecked:
                    # A save vouches for the copy it was decided on: the one whose next version it writes.
                    saved = {a.id: a.pending_events[0].originator_version - 1 for a in pending}
                    if self._stale({key: v for key, v in unchecked.items() if saved.get(key) != v}):
                        continue
                if record_id is not None:
                    assert idempotency is not None and idempotency.key is not None and encode is not None
                    pending.append(
                        IdempotencyRecord(
                            user_id=idempotency.actor,
                            operation=idempotency.operation,
                            key=idempotency.key,
                            fingerprint=print_,
                            result=encode(result),
                            at=idempotency.now,
                        )
                    )
                if not pending:
                    return result
                try:
                    self._save(pending)
                except RecordConflictError:
                    # Another process wrote first: decide again on fresh state, after a little
                    # back-off unless the conflict was this process's cache being behind.
                    span.set_attribute("subledger.conflicts", attempt + 1)
                    if not (unchecked and self._stale(unchecked)):
                        time.sleep(min(0.2, 0.002 * (2 ** min(attempt, 7))) * random.random())
                    continue
                self._remember(pending)
                return result
        raise Conflict("too many concurrent changes to the same object; try again")

    def _stale(self, versions: dict[UUID, int]) -> bool:
        """Whether another process wrote any of these aggregates after the version read; those it
        did are loaded fresh for a while (`LedgerRepository.contested`)."""
        moved = self.repository.moved_on(versions) if versions else []
        self.repository.contested.mark(moved)
        return bool(moved)

    def _remember(self, saved: list[Aggregate]) -> None:
        """Put what a command just saved into the aggregate cache, unless it holds that version
        or a later one. eventsourcing does not (its cache is filled by loads only when it
        fast-forwards), so the next load of a new payment read its history and probed the
        snapshot table (two queries); from the cache it is one fast-forward query, which still
        reads what other processes wrote since. A copy goes in: the command keeps its own."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in saved:
            try:
                cached = cache.get(aggregate.id)
            except KeyError:
                cached = None
            if cached is None or cached.version < aggregate.version:
                cache.put(aggregate.id, deepcopy(aggregate))

    def _save(self, pending: list[Aggregate]) -> None:
        """One command's aggregates, through group commit; a `ledger.save` span when tracing."""
        if self.tracer is NO_TRACER:
            self.committer.save(*pending)
            return
        with self.tracer.span("ledger.save", {"subledger.aggregates": len(pending)}) as saving:
            saving.set_attribute("subledger.batch_commands", self.committer.save(*pending))

    # ------------------------------------------------------------ test clock
    def test_clock_now(self, default: datetime) -> datetime:
        state = self.load(TestClockState, TEST_CLOCK_ID)
        if state is None:
            state = TestClockState(now=default)
            try:
                self.save(state)
            except RecordConflictError:
                state = self.load(TestClockState, TEST_CLOCK_ID)
                assert state is not None
        return state.now

    def advance_test_clock(self, to: datetime) -> datetime:
        def body() -> tuple[datetime, list[Aggregate]]:
            state = self.load(TestClockState, TEST_CLOCK_ID) or TestClockState(now=to)
            state.advance(to)
            return state.now, [state]

        return self.run(body, lock=[TEST_CLOCK_ID])


def _named(user_id: str) -> str:
    """A user id a new wallet or customer may be opened for (an admin's userId can be anything)."""
    if not user_id or not user_id.strip():
        raise InvalidInput("userId must not be empty")
    return user_id
