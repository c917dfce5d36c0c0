"""Where the ledger and the read models live: one database URL for both.

`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASS@HOST:PORT/DB`.
A Postgres URL may carry `?schema=NAME` to keep one deployment (or one test)
in its own schema; the schema is created when missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse


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
            query = parse_qs(parsed.query)
            return cls(
                kind="postgres",
                host=parsed.hostname or "localhost",
                port=parsed.port or 5432,
                user=unquote(parsed.username or ""),
                password=unquote(parsed.password or ""),
                dbname=parsed.path.lstrip("/"),
                schema=query.get("schema", ["public"])[0],
            )
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")

    def ledger_env(self, pool_size: int = 16) -> dict[str, str]:
        """eventsourcing's settings for this database."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        self.ensure_schema()
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size),
            # Connections are recycled after ten minutes instead of pinged before every
            # checkout: a ping is one more round trip on every command.
            "POSTGRES_CONN_MAX_AGE": "600",
        }

    def psycopg_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password or None, dbname=self.dbname
        )

    def ensure_schema(self) -> None:
        if self.schema == "public":
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.psycopg_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
