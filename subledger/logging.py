"""Structured logs: key=value in development, JSON lines in production.

structlog's own loggers and the standard library's (eventsourcing, uvicorn
errors, the projection runner) go through one handler and one renderer, so
a production log is JSON line by line, whoever wrote the line.

No log line shows a secret (SPEC §7). `redact` replaces the known shapes of
one - a billing key in a gateway URL, an Authorization value, a gateway
secret key, a password in a URL, a JWT, a field named like a secret - and
is applied three times over, so no path around one of them leaks:

- a structlog processor, on every structlog event's values;
- a log record factory, on every standard-library record as it is created
  (whatever handler then receives it: ours, pytest's, a library's);
- the handler's formatter, on the finished line (tracebacks included).

A structlog event is redacted by the processor once: it leaves as a `RedactedEvent`, which
the record factory and the handler's filter pass on as it is. They used to redact its every
value again, three times per line (the formatter's copy of the record goes through the
factory too): a fifth of what an access line cost in a loop, 54 -> 43 us (docs/performance.md).

httpx and httpcore log each request's URL (a charge's URL holds the billing
key) at INFO and DEBUG; they, and aiohttp (the gateways' transport under httpx), are
lowered to WARNING as well.

A standard-library record (uvicorn, arq, eventsourcing...) comes out with its fields as
fields, not only inside its message: `logger`, `level`, `timestamp`, the values it was
formatted with as `positional_args`, whatever it was given as `extra=`, and the context
bound with structlog's contextvars (the request id of the request being served,
schema/request_ids.py). uvicorn is run without a logging configuration of its own
(`UVICORN_LOGGING`), so its records reach this handler too.
"""
from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import structlog

#: What a redacted value reads as.
REDACTED = "[redacted]"

#: (pattern, replacement) in order; each keeps the context and drops only the secret.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A billing key in a gateway path: /v1/billing/<key>, /sandbox/billing/<key>/outcome
    # (but not /v1/billing/authorizations/issue, which holds none).
    (re.compile(r"(/billing/)(?!authorizations\b)[^/\s?#\"'<>]+"), r"\1" + REDACTED),
    # Authorization header values.
    # (capitalised, as in the header, and credential-long: "plan=basic period=…" is no secret).
    (re.compile(r"\b(Basic|Bearer|BEARER|bearer)\s+[A-Za-z0-9._~+/-]{8,}=*"), r"\1 " + REDACTED),
    # Gateway keys (Toss: test_sk_…, live_sk_…, test_gsk_…, the client keys too).
    (re.compile(r"\b(?:test|live)_(?:g?sk|ck)_[A-Za-z0-9_-]+"), REDACTED),
    # The sandbox's billing keys.
    (re.compile(r"\bbk_sbx_[A-Za-z0-9_-]+"), REDACTED),
    # A password in a URL: scheme://user:password@host.
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@"), r"\1:" + REDACTED + "@"),
    # JWTs (header.payload.signature, base64url; the header always starts with {" = eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value / "key": "value" where the key names a secret.
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:password|passwd|secret|token|billing_?key|authorization|api_?key|cipher_?key|master_?key)"
            r"[\"']?\s*[=:]\s*[\"']?)(?!\[redacted\])[^\"'\s,;&}]+"
        ),
        r"\1" + REDACTED,
    ),
)

#: Field names whose values are secrets whatever they look like (structlog events).
_SECRET_KEY = re.compile(
    r"(?i)^[\w-]*(password|passwd|secret|token|billing_?key|authorization|api_?key|cipher_?key|master_?key)$"
)


#: Fragments at least one of which every match of `_RULES` contains, after `str.casefold`
#: (which folds whatever the rules' `(?i)` folds, "ſ" and "K" included): "/billing/", an
#: Authorization scheme, a gateway key's "_sk_" / "_gsk_" / "_ck_", a sandbox key, a URL's
#: "://", a JWT's "eyJ", a secret's name ("key" stands for every "…key" the rules name).
#: A line holding none of them matches no rule, so `redact` returns it as it is: most log
#: lines (every access line) hold none, and the seven substitutions cost 20 times more than
#: these substring tests (`subledger bench graphql`, docs/performance.md).
_FRAGMENTS = (
    "/billing/", "basic", "bearer", "_sk_", "_gsk_", "_ck_", "bk_sbx_", "://", "eyj",
    "passw", "secret", "token", "key", "authorization",
)


#: The fragments as one search: a single pass in C over the folded text instead of a substring
#: test per fragment in Python (20 calls per access line; a third of its cost went here).
_ANY_FRAGMENT = re.compile("|".join(re.escape(fragment) for fragment in _FRAGMENTS))


def _may_hold_secret(text: str) -> bool:
    return _ANY_FRAGMENT.search(text.casefold()) is not None


@functools.lru_cache(maxsize=4096)
def _secret_name(key: str) -> bool:
    """Whether a field named `key` holds a secret whatever its value (the same few names come
    back on every line: the answer is kept rather than matched again)."""
    return _SECRET_KEY.match(key) is not None


def redact(text: str) -> str:
    """`text` with every known secret shape replaced by `REDACTED`."""
    if not _may_hold_secret(text):
        return text
    return _apply_rules(text)


def _apply_rules(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """A URL fit to print: without its password (e.g. the database URL `serve` shows)."""
    return redact(url)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _secret_name(k) and v else _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


class RedactedEvent(dict):  # type: ignore[type-arg]
    """An event dict `redact_event` has redacted: every value, and the value of every
    secret-named key, as `_redact_value` would. `redact_record` passes it on unchanged."""


def redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: redact every value of the event (and values of secret-named keys).

    structlog's own bookkeeping keys (`_record`, `_logger`...) hold objects and method names,
    which no rule changes; they are looked at like any other key, so the result is what
    `_redact_value` makes of the whole dict and can be marked as a `RedactedEvent`."""
    for key, value in list(event_dict.items()):
        if _secret_name(key) and value:
            event_dict[key] = REDACTED
        elif isinstance(value, (str, dict, list, tuple)):
            event_dict[key] = _redact_value(value)
    return event_dict if isinstance(event_dict, RedactedEvent) else RedactedEvent(event_dict)


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)  # e.g. an httpx.URL
    redacted = redact(text)
    return value if redacted == text else redacted


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a standard-library record in place: its message and each argument, keeping the
    record's shape (formatters such as uvicorn's access log unpack the arguments)."""
    if isinstance(record.msg, RedactedEvent):  # structlog's event, redacted by `redact_event`
        return record
    if isinstance(record.msg, dict):  # any other dict given as a message
        record.msg = _redact_value(record.msg)
        return record
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    else:
        text = str(record.msg)
        if redact(text) != text:
            record.msg = redact(text)
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when set: the traceback is rendered (and redacted) once, here.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    return record


class RedactingFilter(logging.Filter):
    """A logging filter (for a handler or a logger) that redacts instead of dropping."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_base_factory: Callable[..., logging.LogRecord] | None = None


def install_record_redaction() -> None:
    """Redact every standard-library record when it is created (idempotent)."""
    global _base_factory
    if _base_factory is not None:
        return
    _base_factory = logging.getLogRecordFactory()
    base = _base_factory

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(base(*args, **kwargs))

    logging.setLogRecordFactory(factory)


#: Libraries that log request URLs (a charge's URL holds a billing key) below WARNING.
QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp")

#: uvicorn.run's keywords that leave its records to this module's handler: no handlers of
#: its own (`log_config=None`), no access log of its own (schema/request_ids.py writes one).
UVICORN_LOGGING: dict[str, Any] = {"log_config": None, "access_log": False}

#: Record attributes `ExtraAdder` would add that are no fields: uvicorn's ANSI-coloured copy
#: of its message.
_NOT_FIELDS = ("color_message",)


def _drop_not_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _NOT_FIELDS:
        event_dict.pop(key, None)
    if not event_dict.get("positional_args"):
        event_dict.pop("positional_args", None)  # a message without arguments
    return event_dict


def level_number(level: int | str) -> int:
    """A level given as a number or a name (SUBLEDGER_LOG_LEVEL: "info", "WARNING"...)."""
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(env: str, level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    level = level_number(level)
    shared = [
        structlog.stdlib.add_logger_name,  # whoever wrote it: "subledger.access", "uvicorn.error"...
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_event,
    ]
    renderer = structlog.processors.JSONRenderer() if env == "production" else structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback  # never a traceback with local variables
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )
    formatter = _RedactingFormatter(
        # A foreign record's `extra=` values and format arguments become fields of their own.
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_not_fields, *shared],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    install_record_redaction()
    # No line shows where it was logged from, nor the thread or process: records skip finding
    # the caller's frame and reading those (the logging HOWTO's "Optimization" settings). An
    # access line: 34.5 -> 30.7 us in a loop (production), 137-141 -> 125-127 us of the event
    # loop's CPU while spends are served in process (development), measured once each.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    handler._subledger = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace our previous handler (configured again), keep anyone else's (pytest's capture).
    root.handlers = [h for h in root.handlers if not getattr(h, "_subledger", False)] + [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
