"""The ledger's executor runs each call in its caller's context: a command's log lines,
written in a ledger thread, carry the request id of the request that ran it
(schema/request_ids.py binds it; subledger/app.py's run_sync carries it)."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

import structlog

from subledger.logging import configure_logging
from tests.api.conftest import Api


def test_a_command_logs_with_the_request_id_of_its_caller(api: Api) -> None:
    out = io.StringIO()
    configure_logging("production", stream=out)

    def command() -> str:
        logging.getLogger("domain.test").warning("in a ledger thread")
        return threading.current_thread().name

    try:
        with structlog.contextvars.bound_contextvars(request_id="req-in-thread"):
            thread = asyncio.run(api.built.services.run_sync(command))
        asyncio.run(api.built.services.run_sync(command))  # a call outside any request
    finally:
        configure_logging("development")
    assert thread.startswith("ledger")
    first, second = [json.loads(line) for line in out.getvalue().splitlines() if "in a ledger thread" in line]
    assert first["request_id"] == "req-in-thread"
    assert "request_id" not in second
