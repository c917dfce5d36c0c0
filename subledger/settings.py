"""Configuration from the SUBLEDGER_* environment variables (SPEC §1)."""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROVIDERS = {"sandbox": "SANDBOX", "toss": "TOSS"}


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
    cipher_key: str | None = None
    gateway_retry_base_seconds: float = 1.0
    charge_concurrency: int = 32
    #: Follow the ledger into the read models inside `serve`; false when `subledger projector`
    #: runs them as their own process (the production layout of docker-compose.yml).
    projections_in_process: bool = True
    #: Tests only: the worker runs what is due every N seconds instead of at 00:00 and 09:00.
    worker_tick_seconds: int | None = None
    #: Threads that run ledger commands (eventsourcing is synchronous); also the database pool size.
    threads: int = 16
    max_body_bytes: int = 1_000_000
    #: /readyz fails when a projection lags the ledger by more events than this.
    ready_max_lag: int = 10_000
    #: Mutations that move money or call a gateway, per caller (schema/rate_limit.py): "30/minute"; "off" for none.
    rate_limit: str = "30/minute"
    rate_limit_admin: str = "300/minute"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("rate_limit", "rate_limit_admin")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip().lower() not in ("", "off", "none", "0"):
            try:
                parse_limit(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a rate limit (write it like '30/minute' or 'off')") from None
        return value

    @field_validator("clock_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("SUBLEDGER_CLOCK_START needs a UTC offset (RFC 3339)")
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        unknown = set(self.providers_named) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"unknown gateway(s) in SUBLEDGER_GATEWAY: {', '.join(sorted(unknown))}")
        if "toss" in self.providers_named and not self.toss_secret_key:
            raise ValueError("SUBLEDGER_TOSS_SECRET_KEY is required when SUBLEDGER_GATEWAY includes toss")
        if self.env == "production":
            if not self.jwt_secret or len(self.jwt_secret) < 32:
                raise ValueError("production needs SUBLEDGER_JWT_SECRET (at least 32 characters)")
            if "sandbox" in self.providers_named:
                raise ValueError("the sandbox gateway is disabled in production")
            if self.clock == "test":
                raise ValueError("the test clock is disabled in production")
        return self

    @property
    def providers_named(self) -> list[str]:
        return [p.strip().lower() for p in self.gateway.split(",") if p.strip()]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_secrets(self) -> Settings:
        """Development only: a generated JWT secret when none is configured."""
        if self.jwt_secret:
            return self
        return self.model_copy(update={"jwt_secret": secrets.token_urlsafe(32)})
