"""docs/operations.md runs: each shell block marked `<!-- tested: NAME -->` is run with bash as
written, against a real `subledger serve` and its database, on SQLite and on PostgreSQL.

- Back up while the source serves, restore into a fresh database (the doc's blocks end with
  `subledger audit verify`), serve the copy: `verifyLedger` finds no mismatch and every
  user's balance and payments read as in the source, over HTTP.
- Rotate the master key (the doc's block), restart on the new key only: balances and the
  sealed card numbers still read; the old key alone is refused at start. Rotate the JWT and
  cron secrets (the doc's block), restart: an old token is refused, a new one reads the same
  balance, and the old cron secret answers 401.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psycopg
import pytest

from gateways.tls import client_ssl_context
from schema.auth import mint_token
from subledger.master_keys import generate_key
from subledger.storage import Database
from tests.conftest import POSTGRES_URL, _require
from tests.integration.test_production_mode import run, serve, stop

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations.md"
BIN = Path(sys.executable).parent
TESTED = re.compile(r"^<!-- tested: ([\w-]+) -->\n```sh\n(.*?)^```", re.S | re.M)
USERS = ("ops-alice", "ops-bob")


def blocks() -> dict[str, str]:
    return dict(TESTED.findall(GUIDE.read_text()))


def test_the_guide_marks_exactly_the_blocks_this_test_runs() -> None:
    assert set(blocks()) == {"backup-postgres", "restore-postgres", "backup-sqlite", "restore-sqlite",
                             "rotate-master-key", "rotate-jwt-and-cron-secrets"}


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A block as an operator's shell runs it: PATH with `subledger`, `-eu` so a failing command fails."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    clean.update({"PATH": f"{BIN}:{clean.get('PATH', '')}", **env})
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=clean, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (script, done.stdout, done.stderr)
    return done


def base_env(database_url: str) -> dict[str, str]:
    return {"SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": secrets.token_urlsafe(32),
            "SUBLEDGER_CRON_SECRET": secrets.token_urlsafe(32), "SUBLEDGER_MASTER_KEY": generate_key(),
            "SUBLEDGER_RATE_LIMIT": "off"}


def graphql(url: str, token: str, query: str) -> dict[str, Any]:
    reply = httpx.post(f"{url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}, timeout=60, verify=client_ssl_context())
    body = reply.json()
    assert reply.status_code == 200 and not body.get("errors"), body
    return body["data"]


def token(env: dict[str, str], user: str, scope: str = "user") -> str:
    return mint_token(env["SUBLEDGER_JWT_SECRET"], user, scope, ttl_seconds=3600, email=f"{user}@example.com")


def fill(url: str, env: dict[str, str]) -> None:
    """Users with a card, a points purchase and a spend (the README's session, per user)."""
    for n, user in enumerate(USERS):
        caller = token(env, user)
        method = graphql(url, caller, 'mutation { registerPaymentMethod(input: {provider: SANDBOX, '
                         f'authKey: "test_card_4300000000000001", customerKey: "{user}"}}) {{ id }} }}')
        pm = method["registerPaymentMethod"]["id"]
        graphql(url, caller, f'mutation {{ purchasePoints(input: {{packageId: "regular", paymentMethodId: "{pm}", '
                             f'idempotencyKey: "buy-{user}"}}) {{ payment {{ status }} }} }}')
        for k in range(n + 1):
            graphql(url, caller, f'mutation {{ spendPoints(input: {{service: "tarot_three", serviceId: "r-{user}-{k}"}}) '
                                 '{ pointsSpent } }')


def state(url: str, env: dict[str, str]) -> dict[str, Any]:
    """What each user reads: balance, payments, masked cards (personal data)."""
    seen = {}
    for user in USERS:
        data = graphql(url, token(env, user), "{ wallet { usableBalance } paymentMethods { cardMasked } "
                                             "paymentsPage(first: 10) { items { amount status } } }")
        seen[user] = data
    return seen


def verified(url: str, env: dict[str, str]) -> dict[str, Any]:
    report = graphql(url, token(env, "ops-admin", "admin"), "mutation { verifyLedger { eventsReplayed mismatches } }")
    return report["verifyLedger"]


def settled(url: str, env: dict[str, str]) -> dict[str, Any]:
    """The state once the read models have caught up with the writes (payments are a read model)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        seen = state(url, env)
        if all(len(v["paymentsPage"]["items"]) == 1 for v in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.3)


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def source_database(kind: str, tmp_path: Path) -> tuple[str, str | None]:
    """(a fresh database URL, the name of a database the restore may create), on its own database
    for PostgreSQL: pg_dump and pg_restore copy whole databases."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}", None
    base = _require(POSTGRES_URL, "SUBLEDGER_TEST_POSTGRES_URL")
    name = f"ops_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(Database.from_url(base).psycopg_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parsed = urlparse(base)
    return f"{parsed.scheme}://{parsed.netloc}/{name}", f"{name}_restored"


def test_backup_then_restore_into_a_fresh_database(kind: str, tmp_path: Path) -> None:
    tools = ("pg_dump", "pg_restore", "psql") if kind == "postgres" else ("sqlite3",)
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the {kind} backup blocks cannot run here")
    url, restore_db = source_database(kind, tmp_path)
    env = base_env(url)
    process, live = serve(env)
    try:
        fill(live, env)
        before = settled(live, env)
        script = blocks()[f"backup-{kind}"] + "\n"
        restored_url = f"{urlparse(url).scheme}://{urlparse(url).netloc}/{restore_db}"
        if kind == "sqlite":  # restored on "another machine": here, another file
            restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
            script += f"SUBLEDGER_DATABASE_URL={restored_url}\n"
        script += blocks()[f"restore-{kind}"]
        # The source keeps serving meanwhile: the backup is taken online.
        bash(script, {**env, "RESTORE_DB": restore_db or ""}, tmp_path)  # audit verify exits 1 on a mismatch
    finally:
        stop(process)
    copy_env = {**env, "SUBLEDGER_DATABASE_URL": restored_url}
    process, copy = serve(copy_env)
    try:
        report = verified(copy, copy_env)
        assert report["mismatches"] == [] and report["eventsReplayed"] > 0, report
        after = state(copy, copy_env)
    finally:
        stop(process)
    assert after == before
    assert [after[u]["wallet"]["usableBalance"] for u in USERS] == [5000, 4500]
    assert all(v["paymentsPage"]["items"] == [{"amount": 5000, "status": "SUCCEEDED"}] for v in after.values())


def test_rotating_the_master_key_then_the_jwt_and_cron_secrets(tmp_path: Path, database_url: str) -> None:
    env = base_env(database_url)
    old = dict(env)
    process, url = serve(env)
    try:
        fill(url, env)
        before = settled(url, env)
    finally:
        stop(process)
    assert all(v["paymentMethods"][0]["cardMasked"] for v in before.values())  # sealed, and readable

    # The master key: the doc's block prints the new key's status; its exported values are read back.
    done = bash(blocks()["rotate-master-key"] + '\nprintf "%s\\n" "$SUBLEDGER_MASTER_KEY" >&2', env, tmp_path)
    env["SUBLEDGER_MASTER_KEY"] = done.stderr.strip().splitlines()[-1]
    assert env["SUBLEDGER_MASTER_KEY"] != old["SUBLEDGER_MASTER_KEY"]
    assert old["SUBLEDGER_MASTER_KEY"] not in done.stdout + done.stderr.replace(env["SUBLEDGER_MASTER_KEY"], "")
    refused = run({**env, "SUBLEDGER_MASTER_KEY": old["SUBLEDGER_MASTER_KEY"]}, "audit", "verify")
    assert refused.returncode == 2 and "SUBLEDGER_MASTER_KEY" in refused.stderr, refused.stderr

    # The JWT and cron secrets.
    done = bash(blocks()["rotate-jwt-and-cron-secrets"]
                + '\nprintf "%s\\n%s\\n" "$SUBLEDGER_JWT_SECRET" "$SUBLEDGER_CRON_SECRET" >&2', env, tmp_path)
    env["SUBLEDGER_JWT_SECRET"], env["SUBLEDGER_CRON_SECRET"] = done.stderr.strip().splitlines()[-2:]
    assert len(env["SUBLEDGER_JWT_SECRET"]) >= 32 and env["SUBLEDGER_JWT_SECRET"] != old["SUBLEDGER_JWT_SECRET"]

    process, url = serve(env)  # new master key only (no previous), new secrets
    try:
        assert state(url, env) == before  # balances, payments and the sealed card numbers
        stale = httpx.post(f"{url}/graphql", json={"query": "{ wallet { usableBalance } }"},
                           headers={"Authorization": f"Bearer {token(old, USERS[0])}"}, timeout=30, verify=client_ssl_context())
        assert stale.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", stale.text
        cron = lambda secret: httpx.post(f"{url}/cron/run", headers={"Authorization": f"Bearer {secret}"}, timeout=60, verify=client_ssl_context())  # noqa: E731
        assert cron(old["SUBLEDGER_CRON_SECRET"]).status_code == 401
        assert cron(env["SUBLEDGER_CRON_SECRET"]).status_code == 200
    finally:
        stop(process)
