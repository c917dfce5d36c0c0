"""Idempotency keys kept in the ledger (schema.graphql, Conventions).

A record is saved in the same transaction as the command it guards, so either
both the effect and the key exist or neither does. Its id is derived from
(user, operation, key): a concurrent repeat collides on the insert, reloads and
answers the stored result.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.ids import idempotency_record_id

from domain.errors import IdempotencyKeyReused


@dataclass(frozen=True)
class Idempotency:
    """Who asked (the key's scope), for what, with which key and input, and when."""

    actor: str
    operation: str
    key: str | None
    request: dict[str, Any]
    now: datetime


def fingerprint(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps([operation, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyRecord(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(user_id: str, operation: str, key: str, **_: Any) -> UUID:
        return idempotency_record_id(user_id, operation, key)

    @event("Recorded")
    def __init__(self, user_id: str, operation: str, key: str, fingerprint: str, result: dict[str, Any], at: datetime) -> None:
        self.user_id = user_id
        self.operation = operation
        self.key = key
        self.fingerprint = fingerprint
        self.result = result
        self.recorded_at = at

    def replay(self, fingerprint: str) -> dict[str, Any]:
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReused(
                f"idempotency key {self.key!r} was already used for a different {self.operation} request"
            )
        return self.result
