"""eventsourcing's PostgreSQL persistence, extended to pass libpq connection options on.

eventsourcing's `PostgresDatastore` opens its pool with a fixed set of connection
parameters (host, port, user, password, dbname), so an option of the database URL such as
`sslmode=require` would be dropped. `PERSISTENCE_MODULE` may name a factory class
(eventsourcing's documented extension point); this one is eventsourcing's own factory, which
adds the options from `POSTGRES_CONNECT_OPTIONS` (URL-encoded, written by
`subledger.storage.Database.ledger_env`) to the pool's connection parameters before the
pool opens (it opens on first use).

Its application recorder (`application_recorder_class`, the factory's extension point for
it) is `subledger.pg_recorder.LedgerRecorder`: a save in one statement, and a conflict that
names the aggregate it met.
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from eventsourcing.persistence import Environment
from eventsourcing.postgres import PostgresFactory

from subledger.pg_recorder import LedgerRecorder

CONNECT_OPTIONS = "POSTGRES_CONNECT_OPTIONS"


class PostgresWithOptions(PostgresFactory):
    application_recorder_class = LedgerRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        options = dict(parse_qsl(self.env.get(CONNECT_OPTIONS) or ""))
        if options:
            self.datastore.pool.kwargs.update(options)
