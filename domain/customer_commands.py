"""The customers area: payment methods (billing keys, hard declines remembered on them)
and personal data — contact details and their erasure (SPEC §1 Auth, §5, §7)."""
from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidInput, NotFound
from domain.ids import customer_id

if TYPE_CHECKING:
    from domain.ledger import Ledger

MAX_EMAIL = 320
MAX_NAME = 200


def personal_subject(user_id: str) -> str:
    """Whose key seals the user's personal data: their Customer stream, where all of it lives."""
    return str(customer_id(user_id))


def check_contact_details(email: Any, name: Any) -> tuple[str | None, str | None]:
    for label, value, limit in (("email", email, MAX_EMAIL), ("name", name, MAX_NAME)):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > limit):
            raise InvalidInput(f"{label} must be a non-empty string of at most {limit} characters")
    return email, name


def payment_method_id(user_id: str) -> str:
    """Opaque, but naming its owner, so an admin can act on any user's method by id alone."""
    owner = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
    return f"pm_{owner}_{uuid.uuid4().hex[:16]}"


def payment_method_owner(method_id: str) -> str | None:
    if not method_id.startswith("pm_"):
        return None
    owner, _, _ = method_id[3:].rpartition("_")
    try:
        return base64.urlsafe_b64decode(owner + "=" * (-len(owner) % 4)).decode() or None
    except (ValueError, UnicodeDecodeError):
        return None


class CustomerCommands:
    """Handed the ledger; `ledger.customers`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def add_payment_method(
        self, user_id: str, provider: str, billing_key: str, customer_key: str, card_masked: str | None, now: datetime
    ) -> dict[str, Any]:
        method_id = payment_method_id(user_id)

        def body() -> tuple[dict[str, Any], list[Any]]:
            customer = self.ledger.customer_or_new(user_id, now)
            customer.add_payment_method(method_id, provider, billing_key, customer_key, card_masked, now)
            return customer.payment_methods[method_id], [customer]

        return self.ledger.run(body, lock=[customer_id(user_id)])

    def remove_payment_method(self, user_id: str, method_id: str, now: datetime) -> dict[str, Any]:
        def body() -> tuple[dict[str, Any], list[Any]]:
            customer = self.ledger.customer(user_id)
            if customer is None:
                raise NotFound(f"payment method {method_id} not found")
            customer.remove_payment_method(method_id, now)
            return customer.payment_methods[method_id], [customer]

        return self.ledger.run(body, lock=[customer_id(user_id)])

    def payment_method(self, user_id: str, method_id: str) -> dict[str, Any]:
        customer = self.ledger.customer(user_id)
        if customer is None:
            raise NotFound(f"payment method {method_id} not found")
        return customer.method(method_id)

    def record_contact_details(self, user_id: str, email: Any, name: Any, now: datetime) -> bool:
        """Record the token's email/name claims on the customer when they changed; True when recorded."""
        email, name = check_contact_details(email, name)
        if email is None and name is None:
            return False

        def body() -> tuple[bool, list[Any]]:
            customer = self.ledger.customer_or_new(user_id, now)
            return customer.record_contact_details(email, name, now), [customer]

        return self.ledger.run(body, lock=[customer_id(user_id)])

    def erase_personal_data(self, user_id: str, now: datetime) -> bool:
        """Crypto-shredding: delete the user's key, then record the erasure so every
        process's cached customer forgets the plain values too. Amounts, times and
        ids stay. Repeating it is harmless (there is no key left to delete)."""
        self.ledger.personal_keys.destroy(personal_subject(user_id))

        def body() -> tuple[bool, list[Any]]:
            customer = self.ledger.customer(user_id)
            if customer is None:
                return True, []  # nothing personal was ever recorded
            customer.erase_personal_data(now)
            return True, [customer]

        return self.ledger.run(body, lock=[customer_id(user_id)])
