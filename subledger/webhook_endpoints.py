"""The `webhook_endpoints` table: where webhooks go, which events, and the sealed signing secret.

The signing secret is needed in clear to sign, so it cannot be hashed like a
password; it is stored the way per-user keys are (docs/keys.md): wrapped with
AES-256-GCM under SUBLEDGER_MASTER_KEY (`subledger/master_keys.py`), bound to
its endpoint, so a copy of the database alone cannot forge signatures. Without
a master key (development only) it is stored unwrapped, as per-user keys are.
The secret is answered once, by the mutation that makes it (create, rotate),
and is never part of `Endpoint`, a list answer or a log line.

`position` is the endpoint's fan-out cursor (projections/webhook_deliveries.py):
the ledger position up to which webhook events were considered for it. A new
endpoint starts at the ledger's head, so it receives what happens from then on,
not the history.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from domain.errors import NotFound
from domain.webhooks import WebhookEventType, check_description, check_event_types, check_url, new_secret
from projections.database import ViewDatabase
from projections.webhook_deliveries import ATTEMPTS, DELIVERIES, ENDPOINTS
from projections.wallet_history import to_utc_text
from subledger.master_keys import WRAP_PREFIX, MasterKeyring

DDL = (
    f"CREATE TABLE IF NOT EXISTS {ENDPOINTS} (id TEXT PRIMARY KEY, url TEXT NOT NULL, description TEXT,"
    " event_types TEXT NOT NULL, secret TEXT NOT NULL, enabled INTEGER NOT NULL, position BIGINT NOT NULL,"
    " created_at TEXT NOT NULL, secret_rotated_at TEXT)"
)
COLUMNS = "id, url, description, event_types, enabled, position, created_at, secret_rotated_at"


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    description: str | None
    event_types: tuple[WebhookEventType, ...]
    enabled: bool
    position: int
    created_at: datetime
    secret_rotated_at: datetime | None

    def wants(self, event_type: str) -> bool:
        return self.enabled and any(t.value == event_type for t in self.event_types)


def _endpoint(row: dict) -> Endpoint:
    return Endpoint(
        id=row["id"], url=row["url"], description=row["description"],
        event_types=tuple(WebhookEventType(t) for t in json.loads(row["event_types"])),
        enabled=bool(row["enabled"]), position=int(row["position"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        secret_rotated_at=datetime.fromisoformat(row["secret_rotated_at"]) if row["secret_rotated_at"] else None,
    )


def _subject(endpoint_id: str) -> str:
    return f"webhook-endpoint:{endpoint_id}"


class WebhookEndpoints:
    def __init__(self, view_db: ViewDatabase, keyring: MasterKeyring, *, https_only: bool, create: bool = True) -> None:
        self.view_db = view_db
        self.keyring = keyring
        self.https_only = https_only
        if create:  # else `subledger migrate` made it (projections/versions.py)
            with view_db.transaction() as cursor:
                cursor.execute(DDL)

    def create(self, url: str, event_types: list[WebhookEventType], description: str | None, position: int,
               at: datetime) -> tuple[Endpoint, str]:
        """A new enabled endpoint and its signing secret (the only time the secret is answered)."""
        url = check_url(url, https_only=self.https_only)
        types = check_event_types(event_types)
        description = check_description(description)
        endpoint_id = f"we_{uuid.uuid4().hex}"
        secret = new_secret()
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {ENDPOINTS} (id, url, description, event_types, secret, enabled, position, created_at)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (endpoint_id, url, description, json.dumps([t.value for t in types]),
                 self.keyring.wrap(_subject(endpoint_id), secret.encode("utf-8")), position, to_utc_text(at)),
            )
        return self.get(endpoint_id), secret

    def get(self, endpoint_id: str) -> Endpoint:
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(f"SELECT {COLUMNS} FROM {ENDPOINTS} WHERE id = ?", (str(endpoint_id),)).fetchone()
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return _endpoint(row)

    def all(self) -> list[Endpoint]:
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT {COLUMNS} FROM {ENDPOINTS} ORDER BY created_at, id").fetchall()
        return [_endpoint(row) for row in rows]

    def set_enabled(self, endpoint_id: str, enabled: bool) -> Endpoint:
        with self.view_db.transaction() as cursor:
            cursor.execute(f"UPDATE {ENDPOINTS} SET enabled = ? WHERE id = ?", (1 if enabled else 0, str(endpoint_id)))
        return self.get(endpoint_id)

    def rotate_secret(self, endpoint_id: str, at: datetime) -> tuple[Endpoint, str]:
        """A new signing secret, used from the next attempt on; the old one stops at once."""
        self.get(endpoint_id)
        secret = new_secret()
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {ENDPOINTS} SET secret = ?, secret_rotated_at = ? WHERE id = ?",
                (self.keyring.wrap(_subject(endpoint_id), secret.encode("utf-8")), to_utc_text(at), str(endpoint_id)),
            )
        return self.get(endpoint_id), secret

    def secret(self, endpoint_id: str) -> str:
        """The signing secret in clear, for the sender only."""
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(f"SELECT secret FROM {ENDPOINTS} WHERE id = ?", (endpoint_id,)).fetchone()
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return self.keyring.unwrap(_subject(endpoint_id), row["secret"]).decode("utf-8")

    def delete(self, endpoint_id: str) -> None:
        """The endpoint, its deliveries and their attempts; what is in flight finishes unrecorded."""
        self.get(endpoint_id)
        with self.view_db.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {ATTEMPTS} WHERE delivery_id IN (SELECT id FROM {DELIVERIES} WHERE endpoint_id = ?)",
                (str(endpoint_id),),
            )
            cursor.execute(f"DELETE FROM {DELIVERIES} WHERE endpoint_id = ?", (str(endpoint_id),))
            cursor.execute(f"DELETE FROM {ENDPOINTS} WHERE id = ?", (str(endpoint_id),))

    def rewrap(self) -> int:
        """Wrap every signing secret under the current master key (`subledger keys rotate`);
        the secrets themselves do not change. Answers how many rows were rewritten."""
        if self.keyring.current is None:
            return 0
        current = f"{WRAP_PREFIX}:{self.keyring.current_id}:"
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(f"SELECT id, secret FROM {ENDPOINTS}").fetchall()
        changed = 0
        for row in rows:
            if row["secret"].startswith(current):
                continue
            secret = self.keyring.unwrap(_subject(row["id"]), row["secret"])  # UnknownMasterKey: stop here
            with self.view_db.transaction() as cursor:
                cursor.execute(
                    f"UPDATE {ENDPOINTS} SET secret = ? WHERE id = ? AND secret = ?",
                    (self.keyring.wrap(_subject(row["id"]), secret), row["id"], row["secret"]),
                )
                changed += cursor.rowcount
        return changed

