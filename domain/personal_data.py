"""Personal data in the ledger, encrypted per user (SPEC §7, crypto-shredding).

Why at the event level, in the mapper: the ledger is append-only, so personal
fields can only be forgotten by making them unreadable. A field declared
personal on an event class (`personal(Customer.ContactDetailsRecorded, "email")`)
is encrypted with its subject's key when the event is stored and decrypted
when it is read back; without the key it reads as None. Doing it in the
mapper (rather than in each command) means every reader - aggregate loads,
projections, rebuilds, `events`, the audit replay - gets the same answer
through the one path that decodes events, and no code can forget to decrypt
or crash on an erased field. The event stays decodable after erasure because
only the personal values are ciphertext; amounts, times and ids are untouched.

The subject of an event's personal fields is the aggregate they belong to:
all of a user's personal data lives in their Customer stream, whose id is
derived from the user id, so erasing a user deletes exactly one key.

Values are sealed with AES-256-GCM (`cryptography`, i.e. OpenSSL); the associated
data binds each ciphertext to its aggregate and field, so a value cannot be moved
to another user or field.

Reading in batches (`to_domain_events`, what projections, rebuilds, the audit
and the event log use) fetches the keys of every sealed event of the batch in
one lookup, at the moment the batch is decoded: no key is cached between
batches, so an erasure is seen by the very next batch of every process.
Writing works the same way: a save (`SealingEventStore.put`, every save of the
ledger) reads the keys of all the subjects its events seal, and creates the
missing ones, in one lookup and one transaction, instead of one or two per event.

Credentials (a billing key: with the merchant's secret key it charges the card)
are declared with `secret(...)`: sealed and erased exactly like personal data,
and on top of that never shown. Whatever presents event data to a person
(`events`, `audit replay`, `exportUserData`) passes it through `redact`, which
replaces every secret field, at any depth, by `SEALED` - the user's own
export included, since a billing key is useless to its owner and dangerous in
a file. Old events that stored a billing key in clear load unchanged (an
unsealed value passes through `unseal`) and are redacted the same way.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import EventStore, Mapper, Recording, StoredEvent

from domain.ports import PersonalDataKeys

log = logging.getLogger(__name__)

#: Marks a stored value as sealed; plain values (from before encryption existed) pass through.
ENVELOPE = "$personal"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def personal(event_cls: type, *fields: str) -> None:
    """Declare `fields` of `event_cls` personal: stored encrypted under the aggregate's key."""
    event_cls.personal_fields = tuple(fields)  # type: ignore[attr-defined]


def personal_fields(event_cls: type) -> tuple[str, ...]:
    return getattr(event_cls, "personal_fields", ())


#: What a secret field shows wherever event data or state is presented.
SEALED = "[sealed]"
#: Names of every field declared secret on any event class; the state attributes
#: that hold them carry the same names (Customer.payment_methods[...]["billing_key"]).
_SECRET_NAMES: set[str] = set()


def secret(event_cls: type, *fields: str) -> None:
    """Declare `fields` of `event_cls` credentials: sealed like personal data (and erased
    with it), and shown as `SEALED` by `redact` wherever event data is presented."""
    personal(event_cls, *dict.fromkeys((*personal_fields(event_cls), *fields)))
    _SECRET_NAMES.update(fields)


def secret_names() -> frozenset[str]:
    return frozenset(_SECRET_NAMES)


def redact(value: Any) -> Any:
    """`value` (an event's data or an aggregate's state, already plain JSON-like) with every
    secret field replaced by `SEALED`; None (never recorded, or erased) stays None."""
    if isinstance(value, dict):
        return {
            k: (SEALED if v is not None else None) if k in _SECRET_NAMES else redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def key_id(key: bytes) -> str:
    """Names the key a value was sealed with, so a value sealed under an erased key is
    told apart from a tampered one when a user got a new key later."""
    return hashlib.sha256(b"subledger-key-id:" + key).hexdigest()[:12]


def seal(key: bytes, subject: str, field: str, value: Any) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(value).encode(), f"{subject}:{field}".encode())  # ciphertext | tag
    return {ENVELOPE: base64.b64encode(nonce + sealed).decode("ascii"), "key": key_id(key)}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and ENVELOPE in value


def unseal(key: bytes | None, subject: str, field: str, value: Any) -> Any:
    """The plain value, or None when the key is gone (erased) or the value does not verify."""
    if not is_sealed(value):
        return value
    if key is None or value.get("key") != key_id(key):
        return None  # erased (the key it was sealed with is gone)
    try:
        blob = base64.b64decode(value[ENVELOPE])
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise ValueError("truncated")
        return json.loads(AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{subject}:{field}".encode()))
    except (InvalidTag, ValueError, KeyError, TypeError):
        # A tampered or foreign value must not stop a replay: it reads as erased.
        log.warning("personal_field_unreadable subject=%s field=%s", subject, field)
        return None


class PersonalDataMapper(Mapper):
    """eventsourcing's mapper, sealing the personal fields of marked events."""

    def __init__(self, transcoder: Any, compressor: Any, cipher: Any, keys: PersonalDataKeys) -> None:
        super().__init__(transcoder=transcoder, compressor=compressor, cipher=cipher)
        self.keys = keys
        self._saving = threading.local()  # the keys of the save under way in this thread

    @contextlib.contextmanager
    def sealing(self, domain_events: Sequence[Any]) -> Iterator[None]:
        """While encoding `domain_events`: the keys of every subject they seal are at hand,
        read (and the missing ones created) together, not one subject at a time."""
        subjects = {str(event.originator_id) for event in domain_events if _seals(event)}
        if not subjects:
            yield
            return
        self._saving.keys = self.keys.sealing_keys(subjects)
        try:
            yield
        finally:
            self._saving.keys = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if _seals(domain_event):
            fields, state = personal_fields(type(domain_event)), vars(domain_event)
            subject = str(domain_event.originator_id)
            prepared = getattr(self._saving, "keys", None)
            key = prepared.get(subject) if prepared else None
            if key is None:
                key = self.keys.key(subject, create=True)
            assert key is not None
            sealed = dict(state)
            for field in fields:
                if sealed.get(field) is not None:
                    sealed[field] = seal(key, subject, field, sealed[field])
            # A copy goes to storage; the caller's event (and the aggregate) keep the plain values.
            copy = object.__new__(type(domain_event))
            object.__setattr__(copy, "__dict__", sealed)
            domain_event = copy
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.to_domain_events([stored_event])[0]

    def to_domain_events(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """Decode a batch: the keys of all its sealed events are read in one lookup."""
        events = [Mapper.to_domain_event(self, stored) for stored in stored_events]
        sealed = [
            (event, fields)
            for event in events
            if (fields := personal_fields(type(event))) and any(is_sealed(event.__dict__.get(f)) for f in fields)
        ]
        if sealed:
            keys = self.keys.keys({str(event.originator_id) for event, _ in sealed})
            for event, fields in sealed:
                state, subject = event.__dict__, str(event.originator_id)
                for field in fields:
                    state[field] = unseal(keys.get(subject), subject, field, state.get(field))
        return events


def _seals(event: Any) -> bool:
    """Whether the event holds a personal or secret value to seal (one not None)."""
    fields = personal_fields(type(event))
    return bool(fields) and any(vars(event).get(f) is not None for f in fields)


class SealingEventStore(EventStore):
    """eventsourcing's event store (the ledger's, `Ledger.construct_event_store`), each save's
    events encoded with their keys fetched together (`PersonalDataMapper.sealing`)."""

    mapper: PersonalDataMapper

    def put(self, domain_events: Sequence[Any], **kwargs: Any) -> list[Recording]:
        with self.mapper.sealing(domain_events):
            return super().put(domain_events, **kwargs)


class MemoryKeys:
    """Keys held in memory: for tests and throw-away ledgers; the service uses the SQL table."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def key(self, subject: str, *, create: bool) -> bytes | None:
        if create and subject not in self._keys:
            self._keys[subject] = new_key()
        return self._keys.get(subject)

    def keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        return {s: self._keys[s] for s in subjects if s in self._keys}

    def sealing_keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        return {s: self._keys.setdefault(s, new_key()) for s in subjects}

    def destroy(self, subject: str) -> bool:
        return self._keys.pop(subject, None) is not None
