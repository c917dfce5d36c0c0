"""The arq worker (`subledger worker` processes, real Redis, PostgreSQL) e-mails the outbox
to the real SMTP server process; the API here serves requests only (no lifespan: it sends
nothing), so every message the server gets came from a worker. A worker killed while the
server was receiving a message leaves it UNCONFIRMED, and no worker sends it again."""
from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateways.tls import client_ssl_context
from projections.notification_deliveries import SENDS
from subledger.app import build
from tests.api.conftest import Api, make_settings
from tests.mail.conftest import SmtpServer, smtp_settings, with_address
from tests.scenarios.helpers import subscribe
from tests.servers import serve_asgi
from tests.workers import conftest as worker_fixtures
from tests.workers.conftest import wait_for

# Real `subledger worker` processes on Redis and PostgreSQL (the fixtures of tests/workers).
database_url, clean_redis, start_worker = worker_fixtures.database_url, worker_fixtures.clean_redis, worker_fixtures.start_worker

NOTIFICATION = "query($u: ID) { notifications(userId: $u) { id deliveryStatus deliveryAttempts sentAt lastDeliveryError } }"


def worker_smtp_env(server: SmtpServer, **overrides: Any) -> dict[str, str]:
    values = smtp_settings(server, **overrides)
    return {f"SUBLEDGER_{name.upper()}": str(value) for name, value in values.items()}


@pytest.fixture
def quiet_api(database_url: str, smtp_server: SmtpServer) -> Iterator[Api]:
    built = build(make_settings(database_url, **smtp_settings(smtp_server)))
    with serve_asgi(built.http, lifespan="off") as url:
        api = Api(url=url, built=built, client=httpx.Client(timeout=60, verify=client_ssl_context()), sandbox=built.sandbox)
        try:
            yield api
        finally:
            api.client.close()
            asyncio.run(built.aclose())


def delivery(api: Api, user: str) -> dict[str, Any] | None:
    found = api.gql(NOTIFICATION, {"u": user}, user=user)["notifications"]
    return found[0] if found else None


def stored_state(api: Api, notification: str) -> str | None:
    with api.built.view_db.transaction(readonly=True) as cursor:
        row = cursor.execute(f"SELECT state FROM {SENDS} WHERE id = ?", (notification,)).fetchone()
    return row["state"] if row else None


def test_the_worker_emails_the_outbox(quiet_api: Api, user: str, smtp_server: SmtpServer, start_worker) -> None:
    smtp_server.start()
    address = with_address(quiet_api, user)
    subscribe(quiet_api, user, "free")
    start_worker(**worker_smtp_env(smtp_server))
    sent = wait_for(lambda: (d := delivery(quiet_api, user)) and d["deliveryStatus"] == "SENT" and d, what="the worker's e-mail")
    assert sent["sentAt"] is not None and sent["deliveryAttempts"] == 1
    assert [m["rcpt_tos"] for m in smtp_server.messages()] == [[address]]


def test_a_worker_killed_while_the_server_receives_leaves_it_unconfirmed_and_unsent_again(
    quiet_api: Api, user: str, smtp_server: SmtpServer, start_worker
) -> None:
    smtp_server.start()
    smtp_server.delay_file.write_text("30")  # the server sits on the message before answering
    with_address(quiet_api, user)
    subscribe(quiet_api, user, "free")
    quiet_api.built.catch_up()
    notification = delivery(quiet_api, user)["id"]
    env = worker_smtp_env(smtp_server, smtp_timeout=3)  # claims go stale after 12 x 3 s
    first = start_worker(**env)
    wait_for(lambda: stored_state(quiet_api, notification) == "HANDING_OVER", timeout=60, what="the message being handed over")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    smtp_server.delay_file.unlink()

    start_worker(**env)
    lost = wait_for(lambda: (d := delivery(quiet_api, user)) and d["deliveryStatus"] == "UNCONFIRMED" and d,
                    timeout=90, what="UNCONFIRMED after the stale claim")
    assert lost["sentAt"] is None and lost["deliveryAttempts"] == 1
    assert lost["lastDeliveryError"].startswith("the sender stopped while the server was receiving the message")
    time.sleep(3)  # more runs of the second worker: nothing is sent again
    assert delivery(quiet_api, user)["deliveryAttempts"] == 1
    assert len(smtp_server.messages()) <= 1
