"""The master key's wrapping of per-user keys (subledger/master_keys.py), and key parsing."""
from __future__ import annotations

import base64

import pytest

from subledger.master_keys import MasterKeyring, UnknownMasterKey, decode_key, generate_key, master_key_id, wrapped_by
from subledger.settings import Settings, configuration_errors

DATA_KEY = bytes(range(32))


def ring(*keys: bytes | None) -> MasterKeyring:
    return MasterKeyring(keys[0], tuple(k for k in keys[1:] if k))


def test_a_wrapped_key_names_its_master_key_and_unwraps_only_for_its_subject() -> None:
    master = decode_key(generate_key(), (32,))
    stored = ring(master).wrap("subject-a", DATA_KEY)
    assert stored.startswith("mk1:") and wrapped_by(stored) == master_key_id(master)
    assert base64.b64encode(DATA_KEY).decode() not in stored
    assert ring(master).unwrap("subject-a", stored) == DATA_KEY
    with pytest.raises(ValueError, match="does not verify"):
        ring(master).unwrap("subject-b", stored)  # a row copied onto another user's row
    tampered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    with pytest.raises(ValueError):
        ring(master).unwrap("subject-a", tampered)


def test_the_previous_key_only_unwraps_and_an_unknown_one_is_named() -> None:
    old, new = (decode_key(generate_key(), (32,)) for _ in range(2))
    under_old = ring(old).wrap("s", DATA_KEY)
    rotating = ring(new, old)
    assert rotating.unwrap("s", under_old) == DATA_KEY
    assert wrapped_by(rotating.wrap("s", DATA_KEY)) == master_key_id(new)
    with pytest.raises(UnknownMasterKey) as unknown:
        ring(new).unwrap("s", under_old)
    assert master_key_id(old) in str(unknown.value)
    assert base64.b64encode(old).decode() not in str(unknown.value)


def test_without_a_master_key_rows_are_plain_base64_and_still_read_with_one() -> None:
    plain = MasterKeyring().wrap("s", DATA_KEY)
    assert plain == base64.b64encode(DATA_KEY).decode() and wrapped_by(plain) is None
    assert ring(decode_key(generate_key(), (32,))).unwrap("s", plain) == DATA_KEY


def test_keys_are_read_in_either_base64_alphabet_and_bad_ones_are_refused_without_echo() -> None:
    raw = bytes([0xFB, 0xFF] * 16)  # encodes with + and / (standard) or - and _ (URL-safe)
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        assert decode_key(text, (32,)) == raw
    with pytest.raises(ValueError, match="not base64"):
        decode_key("correct horse!", (32,))
    with pytest.raises(ValueError, match="decodes to 16 bytes, expected 32"):
        decode_key(generate_key(16), (32,))
    secret = "s3cr3t*value*that*is*not*base64"
    lines = configuration_errors(_error(master_key=secret))
    assert lines == [lines[0]] and lines[0].startswith("SUBLEDGER_MASTER_KEY ") and secret not in lines[0]
    lines = configuration_errors(_error(cipher_key=generate_key(20)))
    assert "SUBLEDGER_CIPHER_KEY decodes to 20 bytes, expected 16, 24 or 32" in lines[0]


def test_the_cipher_key_is_handed_to_eventsourcing_in_the_standard_alphabet() -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    settings = Settings(cipher_key=base64.urlsafe_b64encode(raw).decode())
    assert settings.cipher_key == base64.b64encode(raw).decode()


def _error(**values: str):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    try:
        Settings(**values)
    except ValidationError as error:
        return error
    raise AssertionError("expected a configuration error")


def test_rows_wrapped_by_earlier_versions_with_pycryptodome_still_unwrap() -> None:
    # Until 2026-12 rows were wrapped with pycryptodome's AES-GCM; databases written then must read.
    from Crypto.Cipher import AES

    master, nonce = decode_key(generate_key(), (32,)), bytes(range(12))
    cipher = AES.new(master, AES.MODE_GCM, nonce=nonce)
    cipher.update(b"subledger-user-key:subject-a")
    ciphertext, tag = cipher.encrypt_and_digest(DATA_KEY)
    stored = f"mk1:{master_key_id(master)}:" + base64.b64encode(nonce + ciphertext + tag).decode()
    assert ring(master).unwrap("subject-a", stored) == DATA_KEY
    with pytest.raises(ValueError, match="does not verify"):
        ring(master).unwrap("subject-b", stored)
    with pytest.raises(ValueError, match="truncated"):
        ring(master).unwrap("subject-a", f"mk1:{master_key_id(master)}:" + base64.b64encode(nonce).decode())
