"""eventsourcing's PostgreSQL persistence, extended to pass libpq connection options on.

eventsourcing's `PostgresDatastore` opens its pool with a fixed set of connection
parameters (host, port, user, password, dbname), so an option of the database URL such as
`sslmode=require` would be dropped. `PERSISTENCE_MODULE` may name a factory class
(eventsourcing's documented extension point); this one is eventsourcing's own factory, which
adds the options from `POSTGRES_CONNECT_OPTIONS` (URL-encoded, written by
`subledger.storage.Database.ledger_env`) to the pool's connection parameters before the
pool opens (it opens on first use).

Its application recorder (`application_recorder_class`, the factory's extension point for
it) also says which event was refused when a write conflicts: PostgreSQL's unique violation
names the key it found recorded, `(originator_id, originator_version)`, and the recorder
raises `domain.group_commit.VersionConflict` with it, still an eventsourcing
`IntegrityError`. Group commit then fails only the command that holds that aggregate and
writes the rest of its batch together again, where it otherwise splits the batch in halves.
A detail it cannot read (a server whose messages are translated, `lc_messages`) leaves
eventsourcing's error as it was, and the batch is split as before.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

from eventsourcing.persistence import Environment, IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg.errors import UniqueViolation

from domain.group_commit import VersionConflict

CONNECT_OPTIONS = "POSTGRES_CONNECT_OPTIONS"


#: PostgreSQL's DETAIL of a unique violation on the events' primary key.
_RECORDED_KEY = re.compile(
    r"Key \(originator_id, originator_version\)=\(([0-9a-fA-F-]{36}), (\d+)\) already exists\."
)


class VersionNamingRecorder(PostgresApplicationRecorder):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            return super().insert_events(stored_events, **kwargs)
        except IntegrityError as error:
            cause = error.__cause__
            found = _RECORDED_KEY.fullmatch(cause.diag.message_detail or "") if isinstance(cause, UniqueViolation) else None
            if found is None:
                raise
            raise VersionConflict(str(error), UUID(found.group(1)), int(found.group(2))) from cause


class PostgresWithOptions(PostgresFactory):
    application_recorder_class = VersionNamingRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        options = dict(parse_qsl(self.env.get(CONNECT_OPTIONS) or ""))
        if options:
            self.datastore.pool.kwargs.update(options)
