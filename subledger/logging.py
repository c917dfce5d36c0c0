"""Structured logs: key=value in development, JSON lines in production."""
from __future__ import annotations

import logging

import structlog


def configure_logging(env: str, level: int = logging.INFO) -> None:
    renderer = structlog.processors.JSONRenderer() if env == "production" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )
    logging.basicConfig(level=level, format="%(message)s")
