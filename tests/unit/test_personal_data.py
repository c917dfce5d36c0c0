"""Personal fields sealed per user in stored events, and crypto-shredding (SPEC §7), in memory."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from domain.catalog import default_catalog
from domain.customer import Customer
from domain.errors import InvalidInput
from domain.ids import customer_id
from domain.ledger import Ledger
from domain.personal_data import MemoryKeys, is_sealed, new_key, seal, unseal

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)
EMAIL, NAME, CARD = "kim@example.com", "김민지", "4300********0001"


@pytest.fixture
def ledger():
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"))
    yield ledger
    ledger.close()


def stored_bytes(ledger: Ledger, user: str) -> bytes:
    return b"".join(stored.state for stored in ledger.recorder.select_events(customer_id(user)))


def fresh_load(ledger: Ledger, user: str) -> Customer:
    """Replayed from the stored events, not from the aggregate cache."""
    return ledger.repository.get(customer_id(user), version=ledger.customer(user).version)


def with_history(ledger: Ledger, user: str) -> None:
    ledger.customers.record_contact_details(user, EMAIL, NAME, T0)
    ledger.customers.add_payment_method(user, "SANDBOX", "bk-1", "cust-1", CARD, T0)
    ledger.wallets.adjust_points(user, 500, "gift", now=T0, actor="ops")


def test_personal_fields_are_stored_sealed_and_read_back_plain(ledger):
    with_history(ledger, "u1")
    raw = stored_bytes(ledger, "u1")
    for secret in (EMAIL, NAME, CARD, "bk-1"):  # the billing key is a credential: sealed too
        assert secret.encode() not in raw and secret.encode("unicode_escape") not in raw
    assert b"cust-1" in raw  # not personal: stays readable
    customer = fresh_load(ledger, "u1")
    assert (customer.email, customer.name) == (EMAIL, NAME)
    assert [m["card_masked"] for m in customer.payment_methods.values()] == [CARD]
    assert [m["billing_key"] for m in customer.payment_methods.values()] == ["bk-1"]


def test_contact_details_are_recorded_once_per_change(ledger):
    assert ledger.customers.record_contact_details("u2", EMAIL, NAME, T0) is True
    assert ledger.customers.record_contact_details("u2", EMAIL, NAME, T0 + timedelta(hours=1)) is False
    assert ledger.customers.record_contact_details("u2", "new@example.com", NAME, T0 + timedelta(hours=2)) is True
    assert ledger.customers.record_contact_details("u2", None, None, T0) is False
    assert [type(e).__name__ for e in ledger.events.get(customer_id("u2"))] == [
        "Registered", "ContactDetailsRecorded", "ContactDetailsRecorded",
    ]
    assert fresh_load(ledger, "u2").email == "new@example.com"


@pytest.mark.parametrize("email,name", [("", None), ("x" * 321, None), (42, None), (None, ["a"])])
def test_bad_claims_are_refused_and_record_nothing(ledger, email, name):
    with pytest.raises(InvalidInput):
        ledger.customers.record_contact_details("u3", email, name, T0)
    assert ledger.customer("u3") is None


def test_erasure_makes_every_read_null_but_keeps_amounts_and_replays(ledger):
    with_history(ledger, "u4")
    with_history(ledger, "u5")
    assert ledger.customers.erase_personal_data("u4", T0 + timedelta(days=1)) is True

    cached = ledger.customer("u4")
    replayed = fresh_load(ledger, "u4")
    for customer in (cached, replayed):
        assert (customer.email, customer.name) == (None, None)
        assert [m["card_masked"] for m in customer.payment_methods.values()] == [None]
        assert [m["billing_key"] for m in customer.payment_methods.values()] == [None]  # gone with the key
    decoded = list(ledger.events.get(customer_id("u4")))
    contact = next(e for e in decoded if isinstance(e, Customer.ContactDetailsRecorded))
    assert (contact.email, contact.name, contact.at) == (None, None, T0)
    assert ledger.wallet("u4").total_balance == 500
    # Another user's data is untouched.
    assert fresh_load(ledger, "u5").email == EMAIL
    # Claims presented after erasure are not collected again; a new card is sealed under a new key.
    assert ledger.customers.record_contact_details("u4", EMAIL, NAME, T0 + timedelta(days=2)) is False
    ledger.customers.add_payment_method("u4", "SANDBOX", "bk-2", "cust-1", "5500********0002", T0 + timedelta(days=2))
    cards = sorted(str(m["card_masked"]) for m in fresh_load(ledger, "u4").payment_methods.values())
    assert cards == ["5500********0002", "None"]
    assert ledger.customers.erase_personal_data("u4", T0 + timedelta(days=3)) is True
    assert ledger.customers.erase_personal_data("never-seen", T0) is True


def test_a_sealed_value_opens_only_with_its_key_subject_and_field():
    key = new_key()
    sealed = seal(key, "s1", "email", EMAIL)
    assert is_sealed(sealed) and EMAIL not in str(sealed)
    assert unseal(key, "s1", "email", sealed) == EMAIL
    assert unseal(key, "s2", "email", sealed) is None
    assert unseal(key, "s1", "name", sealed) is None
    assert unseal(new_key(), "s1", "email", sealed) is None
    assert unseal(None, "s1", "email", sealed) is None
    tampered = dict(sealed, **{"$personal": sealed["$personal"][:-4] + "AAAA"})
    assert unseal(key, "s1", "email", tampered) is None
    assert unseal(key, "s1", "email", "plain from before sealing") == "plain from before sealing"


def test_memory_keys():
    keys = MemoryKeys()
    assert keys.key("s", create=False) is None
    made = keys.key("s", create=True)
    assert keys.key("s", create=True) == made
    assert keys.destroy("s") is True and keys.destroy("s") is False
    assert keys.key("s", create=False) is None


def test_customers_are_never_snapshotted():
    # A snapshot stores the aggregate's state in clear: a customer's would keep their
    # personal data beyond the reach of the key erasure deletes.
    assert Customer not in Ledger.snapshotting_intervals


def test_values_sealed_by_earlier_versions_with_pycryptodome_still_open():
    # Until 2026-12 seals were made with pycryptodome's AES-GCM; ledgers written then must read.
    import base64
    import json

    from Crypto.Cipher import AES

    key, nonce = new_key(), bytes(range(12))
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(b"s1:email")
    ciphertext, tag = cipher.encrypt_and_digest(json.dumps(EMAIL).encode())
    old = {"$personal": base64.b64encode(nonce + ciphertext + tag).decode(), "key": seal(key, "x", "y", 1)["key"]}
    assert unseal(key, "s1", "email", old) == EMAIL
    assert unseal(key, "s1", "name", old) is None
    truncated = dict(old, **{"$personal": base64.b64encode(nonce + tag[:3]).decode()})
    assert unseal(key, "s1", "email", truncated) is None


class CountingKeys(MemoryKeys):
    """MemoryKeys that counts its lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.single = self.batches = self.created_one_by_one = self.sealing = 0

    def key(self, subject, *, create):
        self.single += not create
        self.created_one_by_one += create
        return super().key(subject, create=create)

    def sealing_keys(self, subjects):
        self.sealing += 1
        return super().sealing_keys(subjects)

    def keys(self, subjects):
        self.batches += 1
        return super().keys(subjects)


def test_a_batch_is_decoded_with_one_key_lookup_and_sees_an_erasure_at_once():
    keys = CountingKeys()
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"), keys=keys)
    try:
        for user in ("b1", "b2", "b3"):
            with_history(ledger, user)
        ledger.customers.erase_personal_data("b2", T0)
        stored = ledger.recorder.select_notifications(start=1, limit=1000)
        keys.single = keys.batches = 0
        events = ledger.mapper.to_domain_events(stored)
        assert (keys.batches, keys.single) == (1, 0)
        one_by_one = [ledger.mapper.to_domain_event(n) for n in stored]
        assert [vars(e) for e in events] == [vars(e) for e in one_by_one]
        emails = {str(e.originator_id): e.email for e in events if type(e).__name__ == "ContactDetailsRecorded"}
        assert emails == {str(customer_id("b1")): EMAIL, str(customer_id("b2")): None, str(customer_id("b3")): EMAIL}
        billing = [e for e in events if type(e).__name__ == "PaymentMethodAdded"]
        assert sorted(str(e.billing_key) for e in billing) == ["None", "bk-1", "bk-1"]
    finally:
        ledger.close()


def test_a_save_fetches_the_keys_of_all_its_subjects_at_once():
    keys = CountingKeys()
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalog=default_catalog(), tz=ZoneInfo("Asia/Seoul"), keys=keys)
    try:
        customers = [Customer(user_id=f"s{n}", at=T0) for n in range(3)]
        for n, customer in enumerate(customers):
            customer.add_payment_method(f"pm_{n}", "SANDBOX", f"bk-{n}", f"cust-{n}", CARD, T0)
        ledger.save(*customers)
        assert (keys.sealing, keys.created_one_by_one) == (1, 0)
        for n in range(3):  # sealed with those keys: read back plain
            stored = fresh_load(ledger, f"s{n}")
            assert [m["billing_key"] for m in stored.payment_methods.values()] == [f"bk-{n}"]
        assert b"bk-1" not in stored_bytes(ledger, "s1")
    finally:
        ledger.close()
