"""The ledger's PostgreSQL recorder: eventsourcing's, writing each save in one statement.

eventsourcing's `PostgresApplicationRecorder` writes a save as a pipelined transaction of
five statements (the lock timeout, `LOCK TABLE … IN EXCLUSIVE MODE`, `NOTIFY`, the insert,
then the commit), and psycopg's pipeline costs more Python than the statements do: about
0.6 ms of CPU per save on this project's machine. This recorder calls one server-side
function instead, `subledger_insert_events(events)`, which does the same four things in
the same order inside the statement's own transaction (autocommit, as eventsourcing's pool
connections are): the table lock still makes notification ids commit in the order they
were issued, so a follower never passes over an id that commits later. One spend in one
thread on PostgreSQL 15 here: 1.06 ms of CPU with the pipeline, 0.64 ms with the function
(docs/performance.md, "One statement per save").

eventsourcing has a function of its own for this (`POSTGRES_ENABLE_DB_FUNCTIONS`), but it
takes no table lock, so ids could commit out of order; this one keeps eventsourcing's lock.
The function is made with the ledger's tables (`create_table`, which `subledger migrate`
runs: `CREATE OR REPLACE`, so a second run changes nothing); a database migrated by an
older release lacks it, and the tables' version (`subledger.migrate.TABLES_VERSION`) makes
processes that do not migrate refuse to start until `subledger migrate` has run.

It also says which event was refused when a write conflicts: PostgreSQL's unique violation
names the key it found recorded, `(originator_id, originator_version)`, and the recorder
raises `domain.group_commit.VersionConflict` with it, still an eventsourcing
`IntegrityError`. Group commit then fails only the command that holds that aggregate and
writes the rest of its batch together again, where it otherwise splits the batch in halves.
A detail it cannot read (a server whose messages are translated, `lc_messages`) leaves
eventsourcing's error as it was, and the batch is split as before.

Its statements are rendered to bytes once. eventsourcing composes them as psycopg `SQL`
objects, and psycopg renders a composed statement again on every execution (and, for
reads, eventsourcing composes it again on every call: one more `+` per condition); bytes
go through psycopg's own cache of parsed queries instead. The text sent is the same, so
the statements prepared on the server are too. A save's events go to the function in
PostgreSQL's binary format (`%b`): psycopg's text format for an array of composites escapes
every field of every event in Python, about 52 µs for a save of two events here, against
15 µs in binary (docs/performance.md, "Statements rendered once, events sent in binary").
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.errors import UniqueViolation
from psycopg.sql import SQL, Composed, Identifier

from domain.group_commit import VersionConflict

#: The server-side function one save calls.
INSERT_FUNCTION = "subledger_insert_events"

#: PostgreSQL's DETAIL of a unique violation on the events' primary key.
_RECORDED_KEY = re.compile(
    r"Key \(originator_id, originator_version\)=\(([0-9a-fA-F-]{36}), (\d+)\) already exists\."
)


class LedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = {
            "schema": Identifier(self.datastore.schema),
            "table": Identifier(self.events_table_name),
            "event": Identifier(self.stored_event_type_name),
            "function": Identifier(INSERT_FUNCTION),
            "channel": Identifier(self.channel_name),
        }
        self.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $body$ "
            "BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $body$"
        ).format(lock_timeout=self.datastore.lock_timeout, **names))
        self._insert_call: Composed | bytes = SQL("SELECT * FROM {schema}.{function}(%b)").format(**names)
        #: The reads' statements as bytes, by which of select_events' conditions they have.
        self._selects: dict[tuple[bool, bool, bool, bool], bytes] = {}

    def _select_statement(self, shape: tuple[bool, bool, bool, bool], connection: Any) -> bytes:
        """eventsourcing's read statement for these conditions, composed as it composes it."""
        gt, lte, desc, limit = shape
        statement = self.select_events_statement
        if gt:
            statement += SQL(" AND originator_version > %s")
        if lte:
            statement += SQL(" AND originator_version <= %s")
        statement += SQL(" ORDER BY originator_version") + SQL(" DESC" if desc else " ASC")
        if limit:
            statement += SQL(" LIMIT %s")
        rendered = self._selects[shape] = statement.as_bytes(connection)
        return rendered

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None, desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """eventsourcing's `select_events`, with its statement rendered once per shape."""
        params: list[Any] = [originator_id]
        params += [value for value in (gt, lte, limit) if value is not None]
        shape = (gt is not None, lte is not None, desc, limit is not None)
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            statement = self._selects.get(shape) or self._select_statement(shape, connection)
            cursor.execute(statement, params, prepare=True)
            return [
                StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                            topic=row["topic"], state=bytes(row["state"]))
                for row in cursor.fetchall()
            ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(event.originator_id, event.originator_version, event.topic, event.state)
            for event in stored_events
        ]
        try:
            with self.datastore.get_connection() as connection, connection.cursor() as cursor:
                if not isinstance(self._insert_call, bytes):
                    self._insert_call = self._insert_call.as_bytes(connection)
                cursor.execute(self._insert_call, (rows,), prepare=True)
                return [row[INSERT_FUNCTION] for row in cursor.fetchall()]
        except IntegrityError as error:
            cause = error.__cause__
            found = _RECORDED_KEY.fullmatch(cause.diag.message_detail or "") if isinstance(cause, UniqueViolation) else None
            if found is None:
                raise
            raise VersionConflict(str(error), UUID(found.group(1)), int(found.group(2))) from cause
