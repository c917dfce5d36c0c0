"""Key material given in the environment, and the master key that wraps per-user keys.

Envelope encryption: every user's personal-data key (`user_keys` table,
`subledger/user_keys.py`) is stored encrypted ("wrapped") under the master key
`SUBLEDGER_MASTER_KEY`, which lives only in the processes' environment. A copy
of the database alone (a backup, a replica, a leaked dump) then reads no
personal data. A wrapped row names the master key it was wrapped with by a key
id (a hash of the key, safe to print), so a new master key can be brought in
while rows wrapped by the previous one (`SUBLEDGER_MASTER_KEY_PREVIOUS`) stay
readable until `subledger keys rotate` has re-wrapped them all.

Stored forms of `user_keys.key_material`:
- `mk1:<key id>:<base64(nonce | ciphertext | tag)>`: wrapped with AES-256-GCM under the
  master key with that id; the associated data binds it to its subject (a row
  copied onto another user's row does not unwrap).
- plain base64 of the 32 key bytes: unwrapped (development without a master
  key, or rows from before master keys existed; `keys rotate` wraps them).

AES-GCM comes from `cryptography` (OpenSSL); the stored layout is the usual
nonce | ciphertext | tag, so rows wrapped by older versions (pycryptodome) unwrap unchanged.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_BYTES = 32
#: Sizes eventsourcing's AESCipher accepts for SUBLEDGER_CIPHER_KEY.
CIPHER_KEY_SIZES = (16, 24, 32)
WRAP_PREFIX = "mk1"
KEY_ID_CHARS = 16
NONCE_BYTES = 12
TAG_BYTES = 16


def decode_key(value: str, sizes: tuple[int, ...]) -> bytes:
    """The bytes of a base64 key (standard or URL-safe alphabet, padding optional);
    ValueError with a message that never repeats the value."""
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) not in sizes:
        expected = " or ".join(filter(None, [", ".join(str(s) for s in sizes[:-1]), str(sizes[-1])]))
        raise ValueError(f"decodes to {len(raw)} bytes, expected {expected}")
    return raw


def generate_key(num_bytes: int = MASTER_KEY_BYTES, *, urlsafe: bool = True) -> str:
    raw = os.urandom(num_bytes)
    return (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode("ascii")


def master_key_id(key: bytes) -> str:
    """Names a master key without revealing it (printed by `keys status`, stored in wrapped rows)."""
    return hashlib.sha256(b"subledger-master-key-id:" + key).hexdigest()[:KEY_ID_CHARS]


def wrapped_by(stored: str) -> str | None:
    """The id of the master key a stored row is wrapped with; None for an unwrapped row."""
    if stored.startswith(WRAP_PREFIX + ":"):
        return stored.split(":", 2)[1]
    return None


class UnknownMasterKey(RuntimeError):
    """A row wrapped with a master key this process was not given."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"a personal-data key is wrapped by master key {key_id}, which is neither SUBLEDGER_MASTER_KEY "
            "nor SUBLEDGER_MASTER_KEY_PREVIOUS"
        )
        self.key_id = key_id


@dataclass(frozen=True)
class MasterKeyring:
    """The current master key (wraps new rows; None: rows are stored unwrapped) and the
    previous ones (only unwrap)."""

    current: bytes | None = None
    previous: tuple[bytes, ...] = ()

    @property
    def current_id(self) -> str | None:
        return master_key_id(self.current) if self.current else None

    @property
    def known_ids(self) -> tuple[str, ...]:
        keys = ([self.current] if self.current else []) + list(self.previous)
        return tuple(dict.fromkeys(master_key_id(k) for k in keys))

    def _by_id(self, key_id: str) -> bytes:
        for key in ([self.current] if self.current else []) + list(self.previous):
            if master_key_id(key) == key_id:
                return key
        raise UnknownMasterKey(key_id)

    def wrap(self, subject: str, data_key: bytes) -> str:
        if self.current is None:
            return base64.b64encode(data_key).decode("ascii")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.current).encrypt(nonce, data_key, _aad(subject))  # ciphertext | tag
        blob = base64.b64encode(nonce + sealed).decode("ascii")
        return f"{WRAP_PREFIX}:{master_key_id(self.current)}:{blob}"

    def unwrap(self, subject: str, stored: str) -> bytes:
        """The data key of a stored row; UnknownMasterKey when its master key is not here,
        ValueError when the row does not verify (tampered, or moved from another subject)."""
        key_id = wrapped_by(stored)
        if key_id is None:
            return base64.b64decode(stored)
        master = self._by_id(key_id)
        blob = base64.b64decode(stored.split(":", 2)[2])
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise ValueError(f"the personal-data key of {subject} is truncated (master key {key_id})")
        try:
            return AESGCM(master).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(subject))
        except InvalidTag:
            raise ValueError(f"the personal-data key of {subject} does not verify under master key {key_id}") from None


def _aad(subject: str) -> bytes:
    return f"subledger-user-key:{subject}".encode()
