"""Configuration from the SUBLEDGER_* environment variables (SPEC §1)."""
from __future__ import annotations

import base64
import os
import secrets
from datetime import datetime
from email.utils import parseaddr
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from subledger.refusal import StartupRefused  # noqa: F401  (re-exported: the settings decide most refusals)
from schema.jwt_algorithms import ASYMMETRIC
from subledger.storage import Database
from subledger.master_keys import CIPHER_KEY_SIZES, MASTER_KEY_BYTES, MasterKeyring, decode_key

PROVIDERS = {"sandbox": "SANDBOX", "toss": "TOSS", "portone": "PORTONE", "kakaopay": "KAKAO_PAY", "naverpay": "NAVER_PAY"}
#: Shortest JWT and cron secret production accepts (HS256 wants a key as long as its hash).
MIN_SECRET_CHARS = 32
#: SUBLEDGER_LOG_LEVEL's values (the standard library's levels).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: SUBLEDGER_JWT_ALGORITHMS: JWKS keys' algorithms, and HS256 for jwt_secret's tokens alongside.
JWT_ALGORITHMS = (*ASYMMETRIC, "HS256")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUBLEDGER_", extra="ignore")

    # Each setting's description is its row in docs/configuration.md (`subledger docs` writes it).
    database_url: str = Field("sqlite:///./subledger.db", description=(
        "The ledger and the read models: `sqlite:///PATH` or `postgresql://USER:PASS@HOST:PORT/DB[?schema=NAME]`. "
        "Other query options are libpq parameters passed to every connection (`sslmode=require`, `sslrootcert=...`, "
        "`application_name=...`); an unknown one is refused at startup."
    ))
    redis_url: str | None = Field(None, description=(
        "Set: scheduled work runs in arq workers (`subledger worker`) and the rate limit is counted in Redis. "
        "Unset: the scheduler runs inside `serve`."
    ))
    gateway: str = Field("sandbox", description=(
        "Payment providers enabled at once, comma-separated: `sandbox`, `toss`, `portone`, `kakaopay`, `naverpay`. Each payment method is charged "
        "by the provider it was registered with; registering with a provider not enabled answers BAD_USER_INPUT."
    ))
    toss_secret_key: str | None = Field(None, description=(
        "Toss secret key (`test_sk_…` / `live_sk_…`); required when `toss` is enabled, `live_` in production."
    ))
    toss_base_url: str = Field("https://api.tosspayments.com", description=(
        "Toss API base URL; tests point it at `subledger sandbox-gateway`."
    ))
    portone_api_secret: SecretStr | None = Field(None, description=(
        "PortOne V2 API secret (`Authorization: PortOne …`); required when `portone` is enabled. The sandbox's "
        "PortOne look-alike takes any secret starting `test_portone_`, which production refuses."
    ))
    portone_store_id: str | None = Field(None, description=(
        "PortOne store id (`store-…`) sent with every PortOne call; required when `portone` is enabled."
    ))
    portone_base_url: str = Field("https://api.portone.io", description=(
        "PortOne API base URL; tests point it at `subledger sandbox-gateway` (its PortOne look-alike)."
    ))
    kakao_secret_key: SecretStr | None = Field(None, description=(
        "KakaoPay secret key (`Authorization: SECRET_KEY …`; its developer center issues a dev and a live one); "
        "required when `kakaopay` is enabled. The sandbox's look-alike takes any key starting `DEV`."
    ))
    kakao_cid: str = Field("TCSUBSCRIP", description=(
        "KakaoPay merchant code (cid) of regular payments; `TCSUBSCRIP` is KakaoPay's test code, refused in production."
    ))
    kakao_base_url: str = Field("https://open-api.kakaopay.com", description=(
        "KakaoPay API base URL; tests point it at `subledger sandbox-gateway`, which serves KakaoPay's look-alike."
    ))
    kakao_registration_amount: int = Field(0, ge=0, description=(
        "KRW of the first payment KakaoPay's registration (ready → approve) charges to issue the sid; "
        "0: no charge (docs/payments.md, KakaoPay)."
    ))
    naver_client_id: str | None = Field(None, description=(
        "NaverPay client id (`X-Naver-Client-Id`); required when `naverpay` is enabled."
    ))
    naver_client_secret: SecretStr | None = Field(None, description=(
        "NaverPay client secret (`X-Naver-Client-Secret`); required when `naverpay` is enabled. The sandbox's "
        "look-alike takes any secret starting `test_`, which production refuses."
    ))
    naver_chain_id: str | None = Field(None, description=(
        "NaverPay chain id (`X-NaverPay-Chain-Id`); required when `naverpay` is enabled."
    ))
    naver_partner_id: str | None = Field(None, description=(
        "NaverPay partner id (`np_…`), the first path segment of every NaverPay API URL; required when `naverpay` is enabled."
    ))
    naver_base_url: str = Field("https://apis.naver.com", description=(
        "NaverPay API domain (`https://dev.apis.naver.com` for its development servers, refused in production); "
        "tests point it at `subledger sandbox-gateway`, which serves NaverPay's look-alike."
    ))
    naver_page_url: str = Field("https://m.pay.naver.com", description=(
        "NaverPay service domain of the payer's registration page (`…/payments/{reserveId}`; development: "
        "`https://test-m.pay.naver.com`); tests point it at the sandbox gateway."
    ))
    sandbox_url: str | None = Field(None, description=(
        "Run the SANDBOX provider against a `subledger sandbox-gateway` server at this URL; unset: in process."
    ))
    jwt_secret: str | None = Field(None, description=(
        "HS256 key of bearer tokens. Development without it: generated for the run. Production: required, "
        "at least 32 characters."
    ))
    cron_secret: str | None = Field(None, description=(
        "Bearer secret of `POST /cron/run`. Production: required (32+ characters) while the endpoint is served."
    ))
    clock: Literal["system", "test"] = Field("system", description=(
        "`test`: a clock that moves only through `advanceTestClock`, kept in the ledger. Refused in production."
    ))
    clock_start: datetime | None = Field(None, description=(
        "Where the test clock starts (RFC 3339 with an offset); default: now."
    ))
    timezone: str = Field("Asia/Seoul", description=(
        "Time zone of the daily runs (00:00 and 09:00), of calendar periods and of \"calendar day\"."
    ))
    catalog: str | None = Field(None, description=(
        "Path of a TOML catalog replacing the built-in one (`domain/catalog_default.toml` is the example)."
    ))
    env: Literal["development", "production"] = Field("development", description=(
        "`production` refuses to start, in one line naming the variable, without real secrets and the master "
        "key, or with the sandbox, a `test_` Toss key or the test clock; it disables GraphiQL and logs JSON lines."
    ))
    cipher_key: str | None = Field(None, description=(
        "Encrypts stored event payloads at rest (eventsourcing's AES cipher); `subledger keys generate --cipher` "
        "makes one, `subledger keys encrypt-ledger` encrypts a ledger written without it."
    ))
    master_key: str | None = Field(None, description=(
        "Wraps every user's personal-data key (envelope encryption); required in production; "
        "`subledger keys generate` makes one. Development without it: per-user keys stored unwrapped, with a warning."
    ))
    master_key_previous: str | None = Field(None, description=(
        "The master key being replaced: still unwraps keys until `subledger keys rotate` re-wrapped them."
    ))
    cron_endpoint: bool = Field(True, description=(
        "`false`: `POST /cron/run` is not served (production then needs no cron secret)."
    ))
    gateway_retry_base_seconds: float = Field(1.0, description=(
        "Base delay of in-call gateway retries: 1, 2 and 4 × base."
    ))
    charge_concurrency: int = Field(32, description="Charges and order lookups in flight at once in a daily run.")
    charge_processes: int = Field(1, ge=1, le=64, description=(
        "Processes the 00:00 charge run is split over, the worker's own included; more than one needs PostgreSQL. "
        "A run is split only when each process gets at least 100 charges, and the charges in flight stay within "
        "SUBLEDGER_CHARGE_CONCURRENCY in all. About one per core (docs/performance.md)."
    ))
    #: Before the grace its own request may still be on its way (4 attempts of 10 s plus
    #: backoff): a lookup would find no order, fail the payment, then see the gateway charge it.
    settle_grace_seconds: float = Field(90.0, description=(
        "The settle job looks a PENDING charge up only once it was recorded this long ago (wall clock). "
        "Lower it only where no charge can still be on its way: with 0, a lookup can find no order and fail "
        "a payment the gateway then charges (docs/faults.md). Tests that crash on purpose set 0 unless "
        "purchases are at the gateway while a settle job runs."
    ))
    projections_in_process: bool = Field(True, description=(
        "`serve` follows the ledger into the read models itself; `false` when `subledger projector` does "
        "(the production layout of docker-compose.yml)."
    ))
    migrate_on_start: bool | None = Field(None, description=(
        "`serve`, `worker` and `projector` run `subledger migrate` themselves as they start (creating tables, "
        "rebuilding read models of a new version); `false`: they only check that the database is migrated and "
        "refuse to start, naming the command, when it is not. Unset: `true` in development, `false` in production "
        "(docs/upgrading.md)."
    ))
    worker_tick_seconds: int | None = Field(None, description=(
        "Tests only: the worker runs what is due every N seconds instead of at 00:00 and 09:00."
    ))
    threads: int = Field(16, description=(
        "Threads that run ledger commands (eventsourcing is synchronous)."
    ))
    max_body_bytes: int = Field(1_000_000, description="Largest request body; a larger one answers HTTP 413.")
    ready_max_lag: int = Field(10_000, description=(
        "`GET /readyz` answers 503 when a read model lags the ledger by more events than this."
    ))
    rate_limit: str = Field("30/minute", description=(
        "Money operations (charges, refunds, card registration) per user token, e.g. `30/minute`; `off` for none. "
        "Over it: RATE_LIMITED and `Retry-After`."
    ))
    rate_limit_admin: str = Field("300/minute", description="The same limit for admin tokens.")
    rate_limit_webhook: str = Field("600/minute", description=(
        "Provider notifications (`POST /webhooks/toss`, which takes no token) per sending address; `off` for none."
    ))
    cors_origins: str = Field("", description=(
        "Browser origins allowed to call the API, comma-separated (`https://app.example.com`, or `*`); "
        "without it no CORS headers are sent and preflights answer 405."
    ))
    cors_methods: str = Field("GET,POST", description="Methods a configured origin may use.")
    cors_headers: str = Field("Authorization,Content-Type", description="Request headers a configured origin may send.")
    cors_max_age: int = Field(600, description="Seconds a browser keeps a preflight's answer.")
    jwks_url: str | None = Field(None, description=(
        "Tokens of an identity provider (Auth0, Keycloak, Cognito) are verified against this JWKS URL "
        "(https in production; docs/identity-providers.md). Unset: only HS256 tokens of SUBLEDGER_JWT_SECRET."
    ))
    jwt_issuer: str | None = Field(None, description="The provider's `iss`; required with SUBLEDGER_JWKS_URL.")
    jwt_audience: str | None = Field(None, description=(
        "This API's audience, comma-separated; a token's audience claim must name one. Required with a JWKS URL."
    ))
    jwt_audience_claim: str = Field("aud", description=(
        "The claim SUBLEDGER_JWT_AUDIENCE is checked against (`client_id` for Cognito access tokens)."
    ))
    jwt_algorithms: str = Field("RS256,ES256", description=(
        "With a JWKS URL: the algorithms accepted; HS256 among them also accepts SUBLEDGER_JWT_SECRET's tokens."
    ))
    jwt_scopes_claim: str = Field("scope", description=(
        "The claim holding scopes: a space-separated string or a list; a dotted name (`realm_access.roles`) "
        "reaches into nested objects."
    ))
    jwt_user_claim: str = Field("sub", description="The claim holding the user id.")
    jwt_scope_prefix: str = Field("", description=(
        "Stripped from scope values before they are matched (`subledger-` makes `subledger-admin` count as `admin`)."
    ))
    jwks_cache_seconds: float = Field(300.0, description="How long a fetched key set is used before it is fetched again.")
    jwks_refresh_cooldown_seconds: float = Field(30.0, description=(
        "An unknown `kid` refetches the key set at most once per this many seconds."
    ))
    smtp_host: str | None = Field(None, description=(
        "SMTP server of notification e-mails (docs/email.md). Unset: development logs them (not emailed) and "
        "production leaves them unsent (PENDING, visible) until one is set."
    ))
    smtp_port: int | None = Field(None, description="Default by SUBLEDGER_SMTP_TLS: 587 (starttls), 465 (tls), 25 (none).")
    smtp_tls: Literal["starttls", "tls", "none"] = Field("starttls", description=(
        "`starttls`, `tls` (implicit) or `none`; certificates are always verified. A password with `none` is refused."
    ))
    smtp_username: str | None = Field(None, description="SMTP AUTH user; goes with SUBLEDGER_SMTP_PASSWORD.")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password; never logged or printed.")
    smtp_from: str | None = Field(None, description=(
        "The From header, `Name <address>` or a bare address (also the envelope sender); required with a host."
    ))
    smtp_timeout: float = Field(30.0, description=(
        "Seconds for each SMTP exchange (connect, a command, the message's acceptance)."
    ))
    smtp_ca_file: str | None = Field(None, description="A CA bundle (PEM) to verify the server's certificate with.")
    smtp_max_attempts: int = Field(10, description="Attempts before a notification is marked FAILED.")
    smtp_retry_base_seconds: float = Field(60.0, description=(
        "Waits between attempts double from this base, up to an hour."
    ))
    webhook_timeout_seconds: float = Field(10.0, description="Webhooks: seconds an endpoint has to answer (docs/webhooks.md).")
    webhook_retry_base_seconds: float = Field(30.0, description="Webhooks: the first retry delay; later ones double.")
    webhook_retry_cap_seconds: float = Field(7200.0, description="Webhooks: the longest retry delay.")
    webhook_retry_window_seconds: float = Field(86400.0, description=(
        "Webhooks: how long a delivery is retried before it is FAILED."
    ))
    webhook_poll_seconds: float = Field(1.0, description="Webhooks: how often `serve` sends what is due.")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description=(
        "`worker` and `projector` serve Prometheus metrics on this port (the API serves `/metrics`); unset: off."
    ))
    missed_run_check_seconds: float = Field(default=60.0, gt=0, description=(
        "Seconds between a worker's looks for a missed 00:00 or 09:00 run (it also looks as it starts)."
    ))
    db_pool_size: int = Field(10, ge=1, description=(
        "Connections of the ledger's pool in each process, at most: two are kept open, the rest opened "
        "as commands wait for one and closed after ten idle minutes. With SUBLEDGER_READ_POOL_SIZE: "
        "processes × (both) must fit PostgreSQL's max_connections (docs/deployment.md gives the formula)."
    ))
    read_pool_size: int = Field(5, ge=1, description="Connections of the read models' pool in each process, at most.")
    log_level: str = Field("INFO", description="Lowest level written: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).")
    otlp_endpoint: str | None = Field(None, description=(
        "OpenTelemetry: the OTLP/HTTP collector's base URL (e.g. http://collector:4318); spans go to "
        "`<url>/v1/traces`. Unset: no tracing at all (docs/operations-monitoring.md#tracing)."
    ))
    otlp_service_name: str = Field("subledger", description="OpenTelemetry: the `service.name` of every span this process exports.")

    @field_validator("otlp_endpoint", mode="before")
    @classmethod
    def _otlp_url(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, like http://collector:4318")
        return value

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

    @field_validator("smtp_host", "smtp_username", "smtp_from", "smtp_ca_file", "smtp_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("must be a TCP port, 1 to 65535")
        return value

    @field_validator("smtp_timeout", "smtp_retry_base_seconds", "webhook_timeout_seconds", "webhook_retry_base_seconds",
                     "webhook_retry_cap_seconds", "webhook_retry_window_seconds", "webhook_poll_seconds")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be a number of seconds above 0")
        return value

    @field_validator("smtp_max_attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _from_address(cls, value: str | None) -> str | None:
        if value is not None:
            _, address = parseaddr(value)
            local, _, domain = address.partition("@")
            if not local or not domain or "@" in domain:
                raise ValueError("must be an e-mail address, like billing@example.com or Billing <billing@example.com>")
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError("names no readable file (a PEM bundle of CA certificates)")
        return value

    @model_validator(mode="after")
    def _smtp_rules(self) -> Settings:
        if not self.smtp_host:
            for name in ("smtp_username", "smtp_password", "smtp_from"):
                if getattr(self, name):
                    raise ValueError(f"SUBLEDGER_{name.upper()} is set but SUBLEDGER_SMTP_HOST is not")
            return self
        if not self.smtp_from:
            raise ValueError("SUBLEDGER_SMTP_FROM is required with SUBLEDGER_SMTP_HOST (the notifications' sender)")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ValueError("SUBLEDGER_SMTP_USERNAME and SUBLEDGER_SMTP_PASSWORD go together: set both or neither")
        if self.smtp_password and self.smtp_tls == "none":
            raise ValueError("SUBLEDGER_SMTP_TLS=none would send SUBLEDGER_SMTP_PASSWORD in clear text: use starttls or tls")
        return self

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
    def _charge_processes(self) -> Settings:
        if self.charge_processes > 1 and self.database_url.startswith("sqlite"):
            raise ValueError(
                "SUBLEDGER_CHARGE_PROCESSES above 1 needs PostgreSQL: SQLite has one writer at a time"
            )
        return self

    @model_validator(mode="after")
    def _identity_provider(self) -> Settings:
        check_identity_provider(self)
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        unknown = set(self.providers_named) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"unknown gateway(s) in SUBLEDGER_GATEWAY: {', '.join(sorted(unknown))}")
        if "toss" in self.providers_named and not self.toss_secret_key:
            raise ValueError("SUBLEDGER_TOSS_SECRET_KEY is required when SUBLEDGER_GATEWAY includes toss")
        self._check_portone()
        if "kakaopay" in self.providers_named and not self.kakao_secret_key:
            raise ValueError("SUBLEDGER_KAKAO_SECRET_KEY is required when SUBLEDGER_GATEWAY includes kakaopay")
        self._check_naverpay()
        if self.env == "production":
            self._check_production()
        return self

    def _check_portone(self) -> None:
        if "portone" not in self.providers_named:
            return
        if not self.portone_api_secret or not self.portone_api_secret.get_secret_value().strip():
            raise ValueError("SUBLEDGER_PORTONE_API_SECRET is required when SUBLEDGER_GATEWAY includes portone")
        if not (self.portone_store_id or "").strip():
            raise ValueError("SUBLEDGER_PORTONE_STORE_ID is required when SUBLEDGER_GATEWAY includes portone")
        if not self.portone_base_url.startswith(("https://", "http://")):
            raise ValueError("SUBLEDGER_PORTONE_BASE_URL must be an http(s) URL")
        if self.env == "production" and self.portone_api_secret.get_secret_value().startswith("test_portone_"):
            raise ValueError("SUBLEDGER_PORTONE_API_SECRET is the sandbox's test secret: production refuses it")

    def _check_naverpay(self) -> None:
        if "naverpay" not in self.providers_named:
            return
        for name in ("client_id", "client_secret", "chain_id", "partner_id"):
            value = getattr(self, f"naver_{name}")
            if not (value.get_secret_value() if isinstance(value, SecretStr) else value or "").strip():
                raise ValueError(f"SUBLEDGER_NAVER_{name.upper()} is required when SUBLEDGER_GATEWAY includes naverpay")
        if self.env != "production":
            return
        if self.naver_client_secret.get_secret_value().startswith("test_"):  # type: ignore[union-attr]
            raise ValueError("SUBLEDGER_NAVER_CLIENT_SECRET is the sandbox's test secret: production refuses it")
        if "//dev." in self.naver_base_url or "//test-" in self.naver_page_url:
            raise ValueError("SUBLEDGER_NAVER_BASE_URL / SUBLEDGER_NAVER_PAGE_URL name NaverPay's development servers: "
                             "production refuses them")

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
        if "kakaopay" in self.providers_named and self.kakao_cid.startswith("TC"):
            raise ValueError("SUBLEDGER_KAKAO_CID is a KakaoPay test code (TC...): production refuses it")
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
    def migrates_on_start(self) -> bool:
        """SUBLEDGER_MIGRATE_ON_START, or its default: development migrates itself, production checks."""
        return self.migrate_on_start if self.migrate_on_start is not None else self.env != "production"

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


def check_identity_provider(settings: Settings) -> None:
    """The SUBLEDGER_JWKS_* / SUBLEDGER_JWT_* settings fit together (one line naming the variable)."""
    if not settings.jwks_url:
        for name in ("jwt_issuer", "jwt_audience"):
            if getattr(settings, name):
                raise ValueError(
                    f"SUBLEDGER_{name.upper()} applies to identity-provider tokens: set SUBLEDGER_JWKS_URL too"
                )
        return
    scheme, _, rest = settings.jwks_url.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise ValueError("SUBLEDGER_JWKS_URL must be an http(s) URL of the provider's key set")
    if settings.env == "production" and scheme != "https":
        raise ValueError("SUBLEDGER_JWKS_URL must be https in production")
    if not settings.jwt_issuer:
        raise ValueError("SUBLEDGER_JWT_ISSUER is required with SUBLEDGER_JWKS_URL (the provider's `iss`)")
    if not split_list(settings.jwt_audience or ""):
        raise ValueError("SUBLEDGER_JWT_AUDIENCE is required with SUBLEDGER_JWKS_URL (this API's `aud`)")
    algorithms = split_list(settings.jwt_algorithms)
    unknown = [alg for alg in algorithms if alg not in JWT_ALGORITHMS]
    if unknown or not set(algorithms) - {"HS256"}:
        raise ValueError(
            f"SUBLEDGER_JWT_ALGORITHMS takes {', '.join(JWT_ALGORITHMS)} (at least one that is not HS256)"
        )
    for name in ("jwt_scopes_claim", "jwt_user_claim", "jwt_audience_claim"):
        if not getattr(settings, name).strip():
            raise ValueError(f"SUBLEDGER_{name.upper()} must name a claim")
    if settings.jwks_cache_seconds <= 0 or settings.jwks_refresh_cooldown_seconds < 0:
        raise ValueError("SUBLEDGER_JWKS_CACHE_SECONDS must be > 0 and SUBLEDGER_JWKS_REFRESH_COOLDOWN_SECONDS >= 0")


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
