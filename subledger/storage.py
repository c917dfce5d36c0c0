"""Where the ledger and the read models live: one database URL for both.

`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASS@HOST:PORT/DB`.
A Postgres URL may carry `?schema=NAME` to keep one deployment (or one test)
in its own schema; the schema is created when missing. Every other query option is a
libpq connection parameter (`sslmode=require`, `sslrootcert=...`, `connect_timeout=10`,
`application_name=...`) and reaches every connection the process opens: the ledger's
pool, the read models' pool and one-off connections. An option libpq does not know is
refused at startup, never dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

from subledger.refusal import StartupRefused

#: Seconds to wait for PostgreSQL to answer at startup before refusing to start (unless the
#: URL sets its own `connect_timeout`).
STARTUP_CONNECT_TIMEOUT = 10
#: Connections of the ledger's pool kept open while a process runs; the rest of
#: SUBLEDGER_DB_POOL_SIZE is opened when commands wait for one.
LEDGER_POOL_HELD = 2


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" | "postgres"
    path: str = ""  # sqlite file
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"
    #: libpq connection parameters from the URL's query, `schema` excepted.
    options: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_url(cls, url: str) -> Database:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
            if not path:
                raise ValueError(f"no file in SQLite URL {url!r}")
            return cls(kind="sqlite", path=path.split("?")[0])
        if parsed.scheme in ("postgresql", "postgres"):
            query = dict(parse_qsl(parsed.query))
            schema = query.pop("schema", "public")
            options = tuple(sorted(query.items()))
            if options:
                _check_libpq_options(dict(options))
            return cls(
                kind="postgres",
                host=parsed.hostname or "localhost",
                port=parsed.port or 5432,
                user=unquote(parsed.username or ""),
                password=unquote(parsed.password or ""),
                dbname=parsed.path.lstrip("/"),
                schema=schema,
                options=options,
            )
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")

    def ledger_env(self, pool_size: int = 16) -> dict[str, str]:
        """eventsourcing's settings for this database. The ledger's pool holds at most
        `pool_size` connections, so a process never opens more than its setting says
        (docs/deployment.md#connections). It keeps `LEDGER_POOL_HELD` of them open and opens
        the rest as commands wait for one (psycopg_pool's overflow, closed again after ten idle
        minutes): an idle or lightly used process holds two sessions instead of ten, and each
        session PostgreSQL starts costs it about 4.5 ms of CPU (docs/performance.md)."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        self.ensure_schema()
        return {
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": str(min(pool_size, LEDGER_POOL_HELD)),
            "POSTGRES_MAX_OVERFLOW": str(max(pool_size - LEDGER_POOL_HELD, 0)),
            # Connections are recycled after ten minutes instead of pinged before every
            # checkout: a ping is one more round trip on every command.
            "POSTGRES_CONN_MAX_AGE": "600",
            # eventsourcing's own factory, extended to pass the URL's libpq options on.
            "PERSISTENCE_MODULE": "subledger.pg_persistence:PostgresWithOptions",
            "POSTGRES_CONNECT_OPTIONS": urlencode(self.options),
        }

    def psycopg_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password or None, dbname=self.dbname,
            **dict(self.options),
        )

    def ensure_schema(self) -> None:
        """Create the URL's schema when missing. This is the process's first connection: a
        server that cannot be reached or refuses the login is refused here, in one line that
        names the variable and the host (StartupRefused), within STARTUP_CONNECT_TIMEOUT."""
        import psycopg
        from psycopg import sql

        timeout = {} if "connect_timeout" in dict(self.options) else {"connect_timeout": STARTUP_CONNECT_TIMEOUT}
        try:
            with psycopg.connect(self.psycopg_conninfo(), autocommit=True, **timeout) as conn:
                if self.schema != "public":
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        except psycopg.OperationalError as error:
            raise StartupRefused(self.unreachable(error)) from None

    def unreachable(self, error: BaseException) -> str:
        """One line: which server, as whom, and libpq's own reason (never the password)."""
        reason = " ".join(str(error).split()) or type(error).__name__
        if self.password:
            reason = reason.replace(self.password, "***")
        return (f"SUBLEDGER_DATABASE_URL: cannot connect to PostgreSQL at {self.host}:{self.port} "
                f"(database {self.dbname!r}, user {self.user!r}): {reason}; "
                "check that the server is up and the URL's host, port, user, password and database")


def _check_libpq_options(options: dict[str, str]) -> None:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        conninfo_to_dict(make_conninfo(**options))
    except ProgrammingError as error:
        raise ValueError(f"unknown connection option in the URL: {error}") from None
