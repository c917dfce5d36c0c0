"""Billing keys are credentials (SPEC §7): sealed in the stored events, never shown by
`events`, `exportUserData` or `audit replay`, unreadable after `eraseUserData`,
and a ledger written before they were sealed keeps working. SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.customer import Customer
from domain.ids import customer_id
from domain.personal_data import SEALED
from tests.api.conftest import JWT_SECRET, Api

ROOT = Path(__file__).resolve().parents[2]
PURCHASE = """mutation($m: ID!) { purchasePoints(input: {packageId: "regular", paymentMethodId: $m}) {
  payment { id status } } }"""
EVENTS = "query($u: ID) { events(userId: $u, first: 1000) { type data } }"
EXPORT = """query { exportUserData { paymentMethods { id cardMasked } events { type data } } }"""
ERASE = "mutation($u: ID!) { eraseUserData(userId: $u) }"
OUTCOME = "mutation($m: ID!) { setSandboxOutcome(paymentMethodId: $m, outcome: INSUFFICIENT_FUNDS) { id } }"
AUDITOR = {"user": "auditor-1", "scope": "auditor"}


def billing_key(api: Api, user: str, method: str) -> str | None:
    """What the charging path reads: the customer replayed from the stored events."""
    ledger = api.built.ledger
    customer = ledger.repository.get(customer_id(user), version=ledger.customer(user).version)
    return customer.payment_methods[method]["billing_key"]


def stored_events(api: Api, user: str) -> str:
    """The customer's rows of eventsourcing's events table, as stored (no cipher key is set)."""
    db, table = api.built.view_db, api.built.ledger.recorder.events_table_name
    uuid = customer_id(user)
    with db.transaction(readonly=True) as cursor:
        rows = cursor.execute(
            f"SELECT state FROM {table} WHERE originator_id = ?", [uuid.hex if db.kind == "sqlite" else uuid]
        ).fetchall()
    assert rows, "the customer's events were found"
    return "\n".join(bytes(row["state"]).decode("utf-8", "replace") for row in rows)


def cli(api: Api, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, "SUBLEDGER_JWT_SECRET": JWT_SECRET, "SUBLEDGER_CLOCK": "test"}
    return subprocess.run(
        [sys.executable, "-m", "subledger.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def shown_everywhere(api: Api, user: str, database_url: str) -> dict[str, str]:
    api.settle_read_models()
    replay = cli(api, database_url, "audit", "replay", "--aggregate", str(customer_id(user)))
    assert replay.returncode == 0, replay.stderr
    return {
        "events": json.dumps(api.gql(EVENTS, {"u": user}, **AUDITOR)["events"], ensure_ascii=False),
        "export": json.dumps(api.gql(EXPORT, user=user)["exportUserData"], ensure_ascii=False),
        "replay": replay.stdout,
        "replay stderr": replay.stderr,
    }


def test_billing_key_is_sealed_never_shown_and_erased(api: Api, user: str, database_url: str) -> None:
    method = api.add_card(user)
    assert api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]["payment"]["status"] == "SUCCEEDED"
    key = billing_key(api, user, method)
    # The key the charge used, as the gateway issued it: the assertions below are about a real secret.
    assert key and key.startswith("bk_sbx_4300000000000001_")
    assert len(api.sandbox.charges()) == 1

    stored = stored_events(api, user)
    assert f"cust-{user}" in stored and "card_masked" in stored  # the row is readable text…
    assert key not in stored  # …but the billing key is sealed

    shown = shown_everywhere(api, user, database_url)
    for where, text in shown.items():
        assert key not in text, where
        assert "4300000000000001" not in text, where  # the card number inside a sandbox key either
    added = [e["data"] for e in json.loads(shown["events"]) if e["type"] == "PaymentMethodAdded"]
    assert [(d["billing_key"], d["card_masked"]) for d in added] == [(SEALED, "4300********0001")]
    replayed = json.loads(shown["replay"])
    assert replayed["state"]["payment_methods"][method]["billing_key"] == SEALED
    assert [e["data"]["billing_key"] for e in replayed["events"] if e["type"] == "PaymentMethodAdded"] == [SEALED]

    # Erasure: the key is gone with the user's key; the method can no longer be charged.
    assert api.gql(ERASE, {"u": user}, user="ops", scope="admin")["eraseUserData"] is True
    assert billing_key(api, user, method) is None
    assert api.built.ledger.customer(user).payment_methods[method]["billing_key"] is None
    error = api.error(PURCHASE, {"m": method}, user=user)
    assert (error.code, error.extensions.get("declineCode")) == ("PAYMENT_FAILED", "INVALID_BILLING_KEY")
    assert len(api.sandbox.charges()) == 1  # not sent to the gateway
    outcome = api.error(OUTCOME, {"m": method}, user=user)
    assert outcome.code == "CONFLICT" and "erased" in outcome.errors[0]["message"]
    after = shown_everywhere(api, user, database_url)
    assert all(key not in text for text in after.values())
    added = [e["data"] for e in json.loads(after["events"]) if e["type"] == "PaymentMethodAdded"]
    assert [(d["billing_key"], d["card_masked"]) for d in added] == [(None, None)]
    verify = cli(api, database_url, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_billing_key_stored_in_clear_before_sealing_still_charges_and_is_never_shown(
    api: Api, user: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ledger written by a version that sealed only the masked card number.
    with monkeypatch.context() as old_version:
        old_version.setattr(Customer.PaymentMethodAdded, "personal_fields", ("card_masked",))
        method = api.add_card(user)
    key = billing_key(api, user, method)
    assert key and key in stored_events(api, user)  # really stored in clear
    assert api.gql(PURCHASE, {"m": method}, user=user)["purchasePoints"]["payment"]["status"] == "SUCCEEDED"
    shown = shown_everywhere(api, user, database_url)
    for where, text in shown.items():
        assert key not in text, where
    added = [e["data"] for e in json.loads(shown["events"]) if e["type"] == "PaymentMethodAdded"]
    assert [d["billing_key"] for d in added] == [SEALED]
    # Erasure cannot shred a value stored in clear, but it stops every use of it.
    api.gql(ERASE, {"u": user}, user="ops", scope="admin")
    assert billing_key(api, user, method) is None
    error = api.error(PURCHASE, {"m": method}, user=user)
    assert (error.code, error.extensions.get("declineCode")) == ("PAYMENT_FAILED", "INVALID_BILLING_KEY")
