"""Configuration from the SUBLEDGER_* environment variables (SPEC §1)."""
from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from subledger.refusal import StartupRefused  # noqa: F401  (re-exported: the settings decide most refusals)
from subledger.storage import Database
from subledger.master_keys import CIPHER_KEY_SIZES, MASTER_KEY_BYTES, MasterKeyring, decode_key

PROVIDERS = {"sandbox": "SANDBOX", "toss": "TOSS"}
#: Shortest JWT and cron secret production accepts (HS256 wants a key as long as its hash).
MIN_SECRET_CHARS = 32
#: SUBLEDGER_LOG_LEVEL's values (the standard library's levels).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUBLEDGER_", extra="ignore")

    database_url: str = "sqlite:///./subledger.db"
    redis_url: str | None = None
    gateway: str = "sandbox"
    toss_secret_key: str | None = None
    toss_base_url: str = "https://api.tosspayments.com"
    #: Where the sandbox provider's HTTP API is; unset runs the sandbox in process.
    sandbox_url: str | None = None
    jwt_secret: str | None = None
    cron_secret: str | None = None
    clock: Literal["system", "test"] = "system"
    clock_start: datetime | None = None
    timezone: str = "Asia/Seoul"
    catalog: str | None = None
    env: Literal["development", "production"] = "development"
    #: eventsourcing's AES key of whole stored event payloads (docs/keys.md); normalized to standard base64.
    cipher_key: str | None = None
    #: Wraps every per-user personal-data key (envelope encryption, docs/keys.md); required in production.
    master_key: str | None = None
    #: The master key being replaced: still unwraps rows until `subledger keys rotate` re-wrapped them.
    master_key_previous: str | None = None
    #: Serve POST /cron/run (for an external cron). Production needs SUBLEDGER_CRON_SECRET while it is served.
    cron_endpoint: bool = True
    gateway_retry_base_seconds: float = 1.0
    charge_concurrency: int = 32
    #: The settle job looks a PENDING charge up only once it was recorded this many seconds
    #: ago by the wall clock: before that its own request may still be on its way (4 attempts
    #: of 10 s plus backoff), and a lookup would find no order, fail the payment, and then
    #: see the gateway charge it. Tests that crash on purpose set 0.
    settle_grace_seconds: float = 90.0
    #: Follow the ledger into the read models inside `serve`; false when `subledger projector`
    #: runs them as their own process (the production layout of docker-compose.yml).
    projections_in_process: bool = True
    #: Tests only: the worker runs what is due every N seconds instead of at 00:00 and 09:00.
    worker_tick_seconds: int | None = None
    #: Threads that run ledger commands (eventsourcing is synchronous).
    threads: int = 16
    #: PostgreSQL connections per process (docs/deployment.md#connections): the ledger's pool
    #: (held open, no overflow) and the read models' pool (opened as needed, up to this many).
    #: 5 processes x (10 + 5) = 75 of PostgreSQL's default 100.
    db_pool_size: int = Field(10, ge=1)
    read_pool_size: int = Field(5, ge=1)
    #: Lowest level written: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).
    log_level: str = "INFO"
    max_body_bytes: int = 1_000_000
    #: /readyz fails when a projection lags the ledger by more events than this.
    ready_max_lag: int = 10_000
    #: Mutations that move money or call a gateway, per caller (schema/rate_limit.py): "30/minute"; "off" for none.
    rate_limit: str = "30/minute"
    rate_limit_admin: str = "300/minute"
    #: Provider notifications (POST /webhooks/toss, which takes no token) per sending address.
    rate_limit_webhook: str = "600/minute"
    #: Browser origins allowed to call the API (CORS, schema/cors.py), comma-separated; none by default.
    cors_origins: str = ""
    cors_methods: str = "GET,POST"
    cors_headers: str = "Authorization,Content-Type"
    cors_max_age: int = 600

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("rate_limit", "rate_limit_admin", "rate_limit_webhook")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip().lower() not in ("", "off", "none", "0"):
            try:
                parse_limit(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a rate limit (write it like '30/minute' or 'off')") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in split_list(value):
            scheme, _, rest = origin.partition("://")
            if origin != "*" and (scheme not in ("http", "https") or not rest or "/" in rest):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], no path, or *")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        name = value.strip().upper()
        if name not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level (one of {', '.join(LOG_LEVELS).lower()})")
        return name

    @field_validator("clock_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("SUBLEDGER_CLOCK_START needs a UTC offset (RFC 3339)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            Database.from_url(value)
        except ValueError as error:
            # Not the URL itself in the message: it may carry a password.
            if str(error).startswith("unknown connection option"):
                raise ValueError(f"SUBLEDGER_DATABASE_URL: {error} (libpq's parameters, e.g. sslmode)") from None
            raise ValueError(
                "SUBLEDGER_DATABASE_URL must be sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB"
            ) from None
        return value

    @field_validator("cipher_key")
    @classmethod
    def _cipher_key(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            raw = decode_key(value, CIPHER_KEY_SIZES)
        except ValueError as problem:
            raise ValueError(
                f"SUBLEDGER_CIPHER_KEY {problem} (make one with `subledger keys generate --cipher`)"
            ) from None
        return base64.b64encode(raw).decode("ascii")  # eventsourcing reads the standard alphabet

    @field_validator("master_key", "master_key_previous")
    @classmethod
    def _master_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        try:
            decode_key(value, (MASTER_KEY_BYTES,))
        except ValueError as problem:
            raise ValueError(
                f"SUBLEDGER_{str(info.field_name).upper()} {problem} (make one with `subledger keys generate`)"
            ) from None
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        unknown = set(self.providers_named) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"unknown gateway(s) in SUBLEDGER_GATEWAY: {', '.join(sorted(unknown))}")
        if "toss" in self.providers_named and not self.toss_secret_key:
            raise ValueError("SUBLEDGER_TOSS_SECRET_KEY is required when SUBLEDGER_GATEWAY includes toss")
        if self.env == "production":
            self._check_production()
        return self

    def _check_production(self) -> None:
        if not self.jwt_secret or len(self.jwt_secret) < MIN_SECRET_CHARS:
            raise ValueError(f"production needs SUBLEDGER_JWT_SECRET (at least {MIN_SECRET_CHARS} characters)")
        if self.cron_endpoint and (not self.cron_secret or len(self.cron_secret) < MIN_SECRET_CHARS):
            raise ValueError(
                f"production serves POST /cron/run: set SUBLEDGER_CRON_SECRET (at least {MIN_SECRET_CHARS} characters)"
                " or SUBLEDGER_CRON_ENDPOINT=false"
            )
        if "sandbox" in self.providers_named:
            raise ValueError("SUBLEDGER_GATEWAY: the sandbox gateway is disabled in production")
        if "toss" in self.providers_named and not (self.toss_secret_key or "").startswith("live_"):
            raise ValueError("SUBLEDGER_TOSS_SECRET_KEY is not a live key (live_sk_...): production refuses test keys")
        if self.clock == "test":
            raise ValueError("SUBLEDGER_CLOCK: the test clock is disabled in production")
        if not self.master_key:
            raise ValueError(
                "production needs SUBLEDGER_MASTER_KEY (wraps the per-user keys; `subledger keys generate`)"
            )

    @property
    def providers_named(self) -> list[str]:
        return [p.strip().lower() for p in self.gateway.split(",") if p.strip()]

    @property
    def cors(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(origins, methods, headers) of the CORS settings, as lists."""
        return split_list(self.cors_origins), split_list(self.cors_methods.upper()), split_list(self.cors_headers)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def keyring(self) -> MasterKeyring:
        current = decode_key(self.master_key, (MASTER_KEY_BYTES,)) if self.master_key else None
        previous = decode_key(self.master_key_previous, (MASTER_KEY_BYTES,)) if self.master_key_previous else None
        return MasterKeyring(current, (previous,) if previous else ())

    def with_secrets(self) -> Settings:
        """Development only: a generated JWT secret when none is configured."""
        if self.jwt_secret:
            return self
        return self.model_copy(update={"jwt_secret": secrets.token_urlsafe(32)})


def split_list(value: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty items."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def configuration_errors(error: ValidationError) -> list[str]:
    """One line per problem, each naming its variable; never the value (it may be a secret)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        message = str(problem["msg"]).removeprefix("Value error, ")
        variable = "SUBLEDGER_" + str(problem["loc"][0]).upper() if problem["loc"] else None
        if variable and variable not in message:
            message = f"{variable}: {message}"
        lines.append(" ".join(message.split()))
    return lines
