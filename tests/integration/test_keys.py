"""Keys on SQLite and PostgreSQL: per-user keys wrapped by the master key and rotated by
`subledger keys rotate` without touching an event; a ledger written in clear encrypted by
`subledger keys encrypt-ledger`, then read by the API and `audit verify`; and each
mismatch between keys and the stored data refused at startup in one line.

The ledger is written through the API (real uvicorn, the sandbox gateway): customers with
contact details and cards, point purchases, spends, rewards, adjustments, a subscription
renewed by the clock, a refund, a promo code, an erased user, and a wallet long enough to
have a snapshot. The commands run as subprocesses on the same database.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.ids import customer_id
from projections.database import ViewDatabase
from schema.auth import mint_token
from subledger.app import build
from subledger.ledger_cipher import encrypt_ledger
from subledger.master_keys import MasterKeyring, decode_key, generate_key
from subledger.settings import StartupRefused
from subledger.storage import Database
from subledger.user_keys import SqlUserKeys
from tests.api.conftest import JWT_SECRET, Api, api_factory, make_settings  # noqa: F401 (api_factory: a fixture)
from tests.processes import run_group

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"user": "ops", "scope": "admin"}
AUDITOR = {"user": "auditor-1", "scope": "auditor"}
EMAIL, NAME, CARD_MASKED = "minji.kim@example.com", "김민지", "4300********0001"
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) { payment { id status } } }"""
SPEND = """mutation($s: String!) { spendPoints(input: {amount: 30, serviceId: $s}) { remainingBalance } }"""
REWARD = 'mutation($u: ID!) { rewardPoints(input: {userId: $u, activity: "daily_login"}) { amount } }'
ADJUST = """mutation($u: ID!, $a: Int!) { adjustPoints(input: {userId: $u, amount: $a, reason: "keys test"}) { id } }"""
SUBSCRIBE = """mutation($m: ID!) { subscribe(input: {planId: "basic", paymentMethodId: $m}) { id status } }"""
REFUND = """mutation($p: ID!) { refundPayment(input: {paymentId: $p, amount: 500, reason: "asked"}) { refundedAmount } }"""
PROMO = """mutation { createPromoCode(input: {code: "KEYS10", percentOff: 10}) { code } }"""
ADVANCE = "mutation($to: DateTime!) { advanceTestClock(to: $to) { job } }"
ERASE = "mutation($u: ID!) { eraseUserData(userId: $u) }"
EXPORT = """query($u: ID) { exportUserData(userId: $u) { userId email name paymentMethods { id cardMasked }
  subscriptions { id status } payments { id amount status kind refundedAmount } wallet { totalBalance } events { type data } } }"""
WALLET = "query($u: ID) { wallet(userId: $u) { totalBalance version } }"
EVENTS = "query($after: Int) { events(after: $after, first: 500) { position aggregateId type version data } }"


def with_claims(user: str) -> str:
    return mint_token(JWT_SECRET, user, "user", email=EMAIL, name=NAME)


def fill(api: Api, user: str) -> None:
    """Events of every kind, through the API."""
    api.gql("{ me }", token=with_claims(user))
    method = api.add_card(user)
    payment = api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]["payment"]
    assert payment["status"] == "SUCCEEDED"
    for i in range(3):
        api.gql(SPEND, {"s": f"reading-{i}"}, user=user)
    api.gql(REWARD, {"u": user}, **ADMIN)
    api.gql(PROMO, **ADMIN)
    assert api.gql(SUBSCRIBE, {"m": method}, user=user)["subscribe"]["status"] == "TRIALING"
    now = datetime.fromisoformat(api.gql("{ clock { now } }")["clock"]["now"])
    api.gql(ADVANCE, {"to": (now + timedelta(days=9)).isoformat()}, **ADMIN)  # the trial ends: a renewal charge
    api.gql(REFUND, {"p": payment["id"]}, **ADMIN)
    gone = f"{user}-gone"
    api.gql("{ me }", token=with_claims(gone))
    api.add_card(gone)
    api.gql(ERASE, {"u": gone}, **ADMIN)
    long_wallet = f"{user}-long"
    for _ in range(105):  # past the wallet's snapshot interval (100)
        api.gql(ADJUST, {"u": long_wallet, "a": 1}, **ADMIN)


def seen(api: Api, user: str) -> dict[str, Any]:
    """What the API answers about the ledger (personal data included)."""
    api.settle_read_models()
    events, after = [], None
    while True:
        page = api.gql(EVENTS, {"after": after}, **AUDITOR)["events"]
        events += page
        if len(page) < 500:
            break
        after = page[-1]["position"]
    return {
        "export": api.gql(EXPORT, {"u": user}, **ADMIN)["exportUserData"],
        "long": api.gql(WALLET, {"u": f"{user}-long"}, **ADMIN)["wallet"],
        "events": events,
    }


def rows(database_url: str, sql: str) -> list[dict[str, Any]]:
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=1)
    try:
        with view_db.transaction(readonly=True) as cursor:
            return [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in r.items()} for r in cursor.execute(sql).fetchall()]
    finally:
        view_db.close()


def stored(database_url: str) -> dict[str, list[dict[str, Any]]]:
    events, snapshots = ("stored_events", "stored_snapshots") if database_url.startswith("sqlite") else ("ledger_events", "ledger_snapshots")
    return {
        name: rows(database_url, f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY originator_id, originator_version")
        for name, table in (("events", events), ("snapshots", snapshots))
    }


def user_keys(database_url: str) -> dict[str, str]:
    return {r["subject"]: r["key_material"] for r in rows(database_url, "SELECT subject, key_material FROM user_keys")}


def cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    clean.update(SUBLEDGER_DATABASE_URL=database_url, SUBLEDGER_JWT_SECRET=JWT_SECRET, SUBLEDGER_CLOCK="test", **env)
    return run_group([sys.executable, "-m", "subledger.cli", *args], env=clean, cwd=ROOT, timeout=300)


def refused_in_one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("subledger: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def refusal(database_url: str, **overrides: Any) -> str:
    with pytest.raises(StartupRefused) as refused:
        build(make_settings(database_url, **overrides))
    return str(refused.value)


def is_plain_json(state: bytes) -> bool:
    try:
        return isinstance(json.loads(state), dict)
    except ValueError:
        return False


def test_rotation_rewraps_every_user_key_and_touches_no_event(api_factory, database_url: str) -> None:
    user = "keys-user"
    api = api_factory()  # development without a master key: rows stored unwrapped
    fill(api, user)
    before = seen(api, user)
    assert (before["export"]["email"], before["export"]["name"]) == (EMAIL, NAME)
    assert before["export"]["paymentMethods"][0]["cardMasked"] == CARD_MASKED
    api.close()
    legacy = user_keys(database_url)
    assert legacy and not any(v.startswith("mk1:") for v in legacy.values())

    old, new = generate_key(), generate_key()
    # The master key turned on: the unwrapped rows still read, new rows are wrapped.
    api = api_factory(master_key=old)
    assert seen(api, user) == before
    api.gql("{ me }", token=with_claims("keys-newcomer"))
    api.close()
    assert user_keys(database_url)[str(customer_id("keys-newcomer"))].startswith("mk1:")
    wrapped_now = {k: v for k, v in user_keys(database_url).items() if k not in legacy}
    assert wrapped_now and all(v.startswith("mk1:") for v in wrapped_now.values())

    events_before = stored(database_url)
    assert events_before["snapshots"]
    done = cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY=old)
    assert done.returncode == 0, done.stderr
    assert f"wrapped {len(legacy)} that were unwrapped" in done.stdout and "0 left" in done.stdout
    under_old = user_keys(database_url)
    assert all(v.startswith("mk1:") for v in under_old.values())

    done = cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY=new, SUBLEDGER_MASTER_KEY_PREVIOUS=old)
    assert done.returncode == 0, done.stderr
    assert f"re-wrapped {len(under_old)}," in done.stdout
    under_new = user_keys(database_url)
    assert under_new.keys() == under_old.keys()
    assert all(under_new[s] != under_old[s] for s in under_new)
    assert len({v.split(":")[1] for v in under_new.values()}) == 1
    assert stored(database_url) == events_before  # no event, no snapshot changed
    status = cli(database_url, "keys", "status", SUBLEDGER_MASTER_KEY=new)
    assert f"(current): {len(under_new)}" in status.stdout and old not in status.stdout and new not in status.stdout

    # The old key is no longer needed; without the new one nothing starts.
    refused_in_one_line(cli(database_url, "audit", "verify", SUBLEDGER_MASTER_KEY=old), "master key", "SUBLEDGER_MASTER_KEY")
    refused_in_one_line(cli(database_url, "audit", "verify"), "wrapped by master key", "SUBLEDGER_MASTER_KEY")
    api = api_factory(master_key=new)
    after = seen(api, user)
    assert after["export"] == before["export"] and after["long"] == before["long"]
    assert after["events"][: len(before["events"])] == before["events"]
    # Erasure still works after rotation.
    assert api.gql(ERASE, {"u": user}, **ADMIN)["eraseUserData"] is True
    erased = api.gql(EXPORT, {"u": user}, **ADMIN)["exportUserData"]
    assert (erased["email"], erased["name"], erased["paymentMethods"][0]["cardMasked"]) == (None, None, None)
    assert erased["wallet"] == before["export"]["wallet"]
    api.close()
    assert len(user_keys(database_url)) == len(under_new) - 1
    assert cli(database_url, "audit", "verify", SUBLEDGER_MASTER_KEY=new).returncode == 0


def test_rotation_without_the_previous_key_refuses_and_changes_nothing(api_factory, database_url: str) -> None:
    old, new = generate_key(), generate_key()
    api = api_factory(master_key=old)
    for user in ("k-a", "k-b", "k-c"):
        api.gql("{ me }", token=with_claims(user))
    api.close()
    keys = user_keys(database_url)
    assert len(keys) == 3
    refused_in_one_line(cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY=new), "SUBLEDGER_MASTER_KEY_PREVIOUS")
    assert user_keys(database_url) == keys
    refused_in_one_line(cli(database_url, "keys", "rotate"), "SUBLEDGER_MASTER_KEY")
    refused_in_one_line(cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY="c2hvcnQ="), "SUBLEDGER_MASTER_KEY", "5 bytes")
    assert user_keys(database_url) == keys
    # A wrapped row moved onto another user's row does not unwrap.
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=1)
    with view_db.transaction() as cursor:
        cursor.execute("UPDATE user_keys SET key_material = ? WHERE subject = ?", (keys[str(customer_id("k-a"))], str(customer_id("k-b"))))
    view_db.close()
    moved = cli(database_url, "keys", "rotate", SUBLEDGER_MASTER_KEY=new, SUBLEDGER_MASTER_KEY_PREVIOUS=old)
    refused_in_one_line(moved, str(customer_id("k-b")), "does not verify")


def test_processes_creating_a_users_first_key_at_once_all_use_the_one_stored(database_url: str) -> None:
    """Eight threads, each with a connection of its own, ask for the same new user's key at
    once (a user's first events saved by several API processes): one row is stored, wrapped,
    and every caller seals with it."""
    keyring = MasterKeyring(decode_key(generate_key(), (32,)))
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=8)
    try:
        keys = SqlUserKeys(view_db, keyring)
        for round_ in range(5):
            subject = f"racer-{round_}"
            start = threading.Barrier(8)

            def first_key(_: int, subject: str = subject, start: threading.Barrier = start) -> bytes | None:
                start.wait()
                return keys.key(subject, create=True)

            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(first_key, range(8)))
            stored_rows = [r for s, r in user_keys(database_url).items() if s == subject]
            assert len(stored_rows) == 1 and stored_rows[0].startswith("mk1:")
            assert got[0] is not None and got == [keyring.unwrap(subject, stored_rows[0])] * 8
            assert keys.key(subject, create=False) == got[0]
        assert keys.key("never-made", create=False) is None and "never-made" not in user_keys(database_url)
    finally:
        view_db.close()


def test_saves_creating_keys_together_and_one_by_one_at_once_all_use_the_one_stored(database_url: str) -> None:
    """A save fetches the keys of all its subjects at once (`sealing_keys`), creating the
    missing ones in one transaction. Eight threads (four such saves with overlapping subjects,
    four single first keys) at once: one row per subject, and every caller has that row's key."""
    keyring = MasterKeyring(decode_key(generate_key(), (32,)))
    view_db = ViewDatabase.open(Database.from_url(database_url), pool_size=8)
    try:
        keys = SqlUserKeys(view_db, keyring)
        keys.key("batch-0", create=True)  # one of them exists before
        subjects = [f"batch-{n}" for n in range(12)]
        start = threading.Barrier(8)

        def take(worker: int) -> dict[str, bytes]:
            start.wait()
            if worker % 2:
                return {subjects[worker]: keys.key(subjects[worker], create=True)}
            return keys.sealing_keys(subjects[worker:worker + 6])

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(take, range(8)))
        stored = {s: keyring.unwrap(s, r) for s, r in user_keys(database_url).items() if s.startswith("batch-")}
        assert sorted(stored) == sorted(subjects)
        for answer in answers:
            assert answer and all(stored[s] == k for s, k in answer.items())
        assert keys.sealing_keys(subjects) == stored
    finally:
        view_db.close()


def test_encrypt_ledger_then_the_api_and_audit_verify_read_it(api_factory, database_url: str) -> None:
    user = "cipher-user"
    master, key = generate_key(), generate_key(urlsafe=False)
    api = api_factory(master_key=master)
    fill(api, user)
    before = seen(api, user)
    api.close()
    plain = stored(database_url)
    assert plain["snapshots"] and all(is_plain_json(r["state"]) for kind in plain.values() for r in kind)

    # Turned on without encrypting: refused at startup, in one line, by every entry point.
    assert "written without it" in refusal(database_url, master_key=master, cipher_key=key)
    env = {"SUBLEDGER_MASTER_KEY": master, "SUBLEDGER_CIPHER_KEY": key}
    refused_in_one_line(cli(database_url, "audit", "verify", **env), "SUBLEDGER_CIPHER_KEY", "encrypt-ledger")
    refused_in_one_line(cli(database_url, "serve", "--port", "0", **env), "SUBLEDGER_CIPHER_KEY", "encrypt-ledger")
    for command in (["worker"], ["projector"]):  # the worker refuses before it connects to Redis
        refused_in_one_line(cli(database_url, *command, SUBLEDGER_REDIS_URL="redis://127.0.0.1:9/0", **env), "encrypt-ledger")

    done = cli(database_url, "keys", "encrypt-ledger", "--batch-size", "97", **env)
    assert done.returncode == 0, done.stderr
    assert f"encrypted {len(plain['events'])} events and {len(plain['snapshots'])} snapshots" in done.stdout
    encrypted = stored(database_url)
    for kind in ("events", "snapshots"):
        assert [(r["originator_id"], r["originator_version"], r["topic"]) for r in encrypted[kind]] == [
            (r["originator_id"], r["originator_version"], r["topic"]) for r in plain[kind]
        ]
        assert not any(is_plain_json(r["state"]) for r in encrypted[kind])
        assert not any(EMAIL.encode() in r["state"] or user.encode() in r["state"] for r in encrypted[kind])
    again = cli(database_url, "keys", "encrypt-ledger", **env)
    assert "encrypted 0 events and 0 snapshots" in again.stdout and stored(database_url) == encrypted

    verify = cli(database_url, "audit", "verify", **env)
    assert verify.returncode == 0 and " 0 mismatch(es)" in verify.stderr, verify.stderr
    api = api_factory(master_key=master, cipher_key=key)
    assert seen(api, user) == before
    api.gql(ADJUST, {"u": user, "a": 5}, **ADMIN)  # new events are written encrypted
    api.close()
    newest = stored(database_url)["events"]
    assert len(newest) > len(plain["events"]) and not any(is_plain_json(r["state"]) for r in newest)

    # A wrong key, or none, is refused before any read, in one line.
    assert "does not decrypt" in refusal(database_url, master_key=master, cipher_key=generate_key())
    assert "are encrypted" in refusal(database_url, master_key=master)
    refused_in_one_line(cli(database_url, "audit", "verify", SUBLEDGER_MASTER_KEY=master, SUBLEDGER_CIPHER_KEY=generate_key()),
                        "SUBLEDGER_CIPHER_KEY", "does not decrypt")
    refused_in_one_line(cli(database_url, "keys", "encrypt-ledger", SUBLEDGER_CIPHER_KEY=generate_key()), "a key other than")
    assert stored(database_url)["events"] == newest


def test_an_interrupted_encrypt_ledger_refuses_to_start_until_run_again(api_factory, database_url: str) -> None:
    api = api_factory()
    fill(api, "half-user")
    api.close()
    key = generate_key()
    batches = []

    def stop_after_two(what: str, count: int) -> None:
        batches.append(count)
        if len(batches) == 2:
            raise KeyboardInterrupt  # as a ^C between two batches

    with pytest.raises(KeyboardInterrupt):
        encrypt_ledger(Database.from_url(database_url), key, batch_size=50, progress=stop_after_two)
    states = [is_plain_json(r["state"]) for r in stored(database_url)["events"]]
    assert True in states and False in states  # really half done
    assert "did not finish" in refusal(database_url, cipher_key=key)
    assert "did not finish" in refusal(database_url)
    done = cli(database_url, "keys", "encrypt-ledger", SUBLEDGER_CIPHER_KEY=key)
    assert done.returncode == 0 and "(100 and 0 already were)" in done.stdout, done.stdout + done.stderr
    assert cli(database_url, "audit", "verify", SUBLEDGER_CIPHER_KEY=key).returncode == 0
