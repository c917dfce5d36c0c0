"""Contact details and erasure of a user's personal data (SPEC §1 Auth, §7)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidInput
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


class PersonalDataCommands:
    def record_contact_details(self: Ledger, user_id: str, email: Any, name: Any, now: datetime) -> bool:
        """Record the token's email/name claims on the customer when they changed; True when recorded."""
        email, name = check_contact_details(email, name)
        if email is None and name is None:
            return False

        def body() -> tuple[bool, list[Any]]:
            customer = self.customer_or_new(user_id, now)
            return customer.record_contact_details(email, name, now), [customer]

        return self.run(body, lock=[customer_id(user_id)])

    def erase_personal_data(self: Ledger, user_id: str, now: datetime) -> bool:
        """Crypto-shredding: delete the user's key, then record the erasure so every
        process's cached customer forgets the plain values too. Amounts, times and
        ids stay. Repeating it is harmless (there is no key left to delete)."""
        self.personal_keys.destroy(personal_subject(user_id))

        def body() -> tuple[bool, list[Any]]:
            customer = self.customer(user_id)
            if customer is None:
                return True, []  # nothing personal was ever recorded
            customer.erase_personal_data(now)
            return True, [customer]

        return self.run(body, lock=[customer_id(user_id)])
