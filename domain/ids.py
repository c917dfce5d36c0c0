"""Deterministic identifiers. Aggregates that must exist once per thing
(a user's wallet, the payment of one order) take ids derived from that thing,
so two racing writers collide on the same version-1 insert instead of creating
two of them."""
from __future__ import annotations

import hashlib
from uuid import NAMESPACE_URL, UUID, uuid5

NAMESPACE = uuid5(NAMESPACE_URL, "https://subledger.dev/ids")


def wallet_id(user_id: str) -> UUID:
    return uuid5(NAMESPACE, f"wallet:{user_id}")


def service_spend_id(user_id: str, service_id: str) -> UUID:
    return uuid5(NAMESPACE, f"service-spend:{user_id}:{service_id}")


def customer_id(user_id: str) -> UUID:
    return uuid5(NAMESPACE, f"customer:{user_id}")


def payment_id(order_id: str) -> UUID:
    return uuid5(NAMESPACE, f"payment:{order_id}")


def idempotency_record_id(user_id: str, operation: str, key: str) -> UUID:
    return uuid5(NAMESPACE, f"idempotency:{user_id}:{operation}:{key}")


def transaction_id(wallet: UUID, version: int) -> str:
    """A wallet transaction is the wallet event at `version`; its id is derived
    from both so the projection and the aggregate agree without storing it.

    It is `str(uuid5(wallet, str(version)))`, computed on the hex digest directly:
    the history projection makes one per wallet event, and a rebuild makes
    millions, where building UUID objects cost more than the SHA-1 itself."""
    return uuid5_text(wallet, str(version))


def uuid5_text(namespace: UUID, name: str) -> str:
    """`str(uuid5(namespace, name))`, computed on the SHA-1's hex digest directly (see above)."""
    digest = hashlib.sha1(namespace.bytes + name.encode()).hexdigest()
    # uuid5's version nibble (5) and RFC 4122 variant bits (10xx), set on the hex digits.
    h = f"{digest[:12]}5{digest[13:16]}{'89ab'[int(digest[16], 16) & 3]}{digest[17:32]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def purchase_order_id(purchase: UUID) -> str:
    # Toss order ids: 6-64 characters of [A-Za-z0-9_-].
    return f"pts-{purchase.hex}"
