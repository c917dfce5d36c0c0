"""Structured logs (JSON in production, whoever logs) without I/O beyond a string buffer."""
from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from subledger.logging import configure_logging


def test_production_logs_are_json_lines_from_structlog_and_the_standard_library() -> None:
    out = io.StringIO()
    configure_logging("production", stream=out)
    try:
        structlog.get_logger("subledger.test").info("job_ran", job="expire_points", processed=3)
        logging.getLogger("projections.runner").warning("projection=%s catch_up failed", "payments")
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("subledger.test").exception("unexpected_error")
    finally:
        configure_logging("development")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(l["event"], l["level"]) for l in lines] == [
        ("job_ran", "info"),
        ("projection=payments catch_up failed", "warning"),
        ("unexpected_error", "error"),
    ]
    assert lines[0]["job"] == "expire_points" and lines[0]["processed"] == 3 and "timestamp" in lines[0]
    assert lines[1]["logger"] == "projections.runner"
    assert "ValueError: boom" in lines[2]["exception"]


def test_development_logs_are_key_value_text() -> None:
    out = io.StringIO()
    configure_logging("development", stream=out)
    structlog.get_logger("subledger.test").info("job_ran", job="expire_points")
    text = out.getvalue()
    assert "job_ran" in text and "job=expire_points" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
