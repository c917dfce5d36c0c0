"""A customer: the user's payment methods (billing keys, never card numbers)
and the facts that outlive any one subscription, such as having had a trial."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.copying import copy_aggregate
from domain.ids import customer_id
from domain.personal_data import personal, secret

from domain.errors import Conflict, NotFound

PROVIDERS = ("TOSS", "KAKAO_PAY", "NAVER_PAY", "SANDBOX", "PORTONE")


class Customer(Aggregate):
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py

    @staticmethod
    def create_id(user_id: str, **_: Any) -> UUID:
        return customer_id(user_id)

    @event("Registered")
    def __init__(self, user_id: str, at: datetime) -> None:
        self.user_id = user_id
        self.registered_at = at
        # method id -> {"id", "provider", "billing_key", "customer_key", "card_masked", "active", "created_at",
        #               "hard_decline" (a decline code, once the provider refused the method for good)};
        # billing_key and card_masked are None once the user's data was erased.
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.had_trial = False
        # Contact details from the token's claims (personal data, SPEC §7).
        self.email: str | None = None
        self.name: str | None = None
        self.erased_at: datetime | None = None

    def method(self, method_id: str, *, active_only: bool = True) -> dict[str, Any]:
        """The payment method, or NotFound (also for a foreign id: the caller only ever sees its own)."""
        method = self.payment_methods.get(method_id)
        if method is None or (active_only and not method["active"]):
            raise NotFound(f"payment method {method_id} not found")
        return method

    def add_payment_method(
        self,
        method_id: str,
        provider: str,
        billing_key: str,
        customer_key: str,
        card_masked: str | None,
        at: datetime,
    ) -> None:
        self._payment_method_added(
            method_id=method_id,
            provider=provider,
            billing_key=billing_key,
            customer_key=customer_key,
            card_masked=card_masked,
            at=at,
        )

    def remove_payment_method(self, method_id: str, at: datetime) -> None:
        self.method(method_id)
        self._payment_method_removed(method_id=method_id, at=at)

    def remember_hard_decline(self, method_id: str, decline_code: str, at: datetime) -> bool:
        """A hard decline (SPEC §5) is remembered on the method, whichever operation met it:
        no later charge of it is sent to the provider. False when it was remembered already."""
        method = self.payment_methods.get(method_id)
        if method is None or method.get("hard_decline"):
            return False
        self._hard_declined(method_id=method_id, decline_code=decline_code, at=at)
        return True

    def start_trial(self, at: datetime) -> None:
        if not self.had_trial:
            self._trial_started(at=at)

    @property
    def live_subscription(self) -> str | None:
        # getattr: snapshots taken before subscriptions existed lack the attribute.
        return getattr(self, "live_subscription_id", None)

    def open_subscription(self, subscription_id: str, at: datetime) -> None:
        """One live subscription per user (SPEC §3): saved with the subscription, so two
        concurrent subscribes conflict on this customer and the second one is refused."""
        if self.live_subscription not in (None, subscription_id):
            raise Conflict("the user already has a live subscription (use changePlan)")
        if self.live_subscription is None:
            self._subscription_opened(subscription_id=subscription_id, at=at)

    def close_subscription(self, subscription_id: str, at: datetime) -> None:
        if self.live_subscription == subscription_id:
            self._subscription_closed(subscription_id=subscription_id, at=at)

    def record_contact_details(self, email: str | None, name: str | None, at: datetime) -> bool:
        """Record the contact details when they changed; False when there was nothing new.
        Once the user's data was erased, claims are no longer collected."""
        if self.erased_at is not None or (email, name) == (self.email, self.name):
            return False
        self._contact_details_recorded(email=email, name=name, at=at)
        return True

    def erase_personal_data(self, at: datetime) -> None:
        """Forget the personal fields in this state too, so every cached copy of the
        customer (in any process) drops them as soon as it sees this event."""
        self._personal_data_erased(at=at)

    @event("ContactDetailsRecorded")
    def _contact_details_recorded(self, email: str | None, name: str | None, at: datetime) -> None:
        self.email = email
        self.name = name

    @event("PersonalDataErased")
    def _personal_data_erased(self, at: datetime) -> None:
        self.email = None
        self.name = None
        for method in self.payment_methods.values():
            method["card_masked"] = None
            # Sealed under the erased key too: the method can no longer be charged.
            method["billing_key"] = None
        self.erased_at = at

    @event("PaymentMethodAdded")
    def _payment_method_added(
        self,
        method_id: str,
        provider: str,
        billing_key: str,
        customer_key: str,
        card_masked: str | None,
        at: datetime,
    ) -> None:
        self.payment_methods[method_id] = {
            "id": method_id,
            "provider": provider,
            "billing_key": billing_key,
            "customer_key": customer_key,
            "card_masked": card_masked,
            "active": True,
            "created_at": at,
            "hard_decline": None,
        }

    @event("PaymentMethodRemoved")
    def _payment_method_removed(self, method_id: str, at: datetime) -> None:
        self.payment_methods[method_id]["active"] = False

    @event("PaymentMethodHardDeclined")
    def _hard_declined(self, method_id: str, decline_code: str, at: datetime) -> None:
        self.payment_methods[method_id]["hard_decline"] = decline_code

    @event("TrialStarted")
    def _trial_started(self, at: datetime) -> None:
        self.had_trial = True

    @event("SubscriptionOpened")
    def _subscription_opened(self, subscription_id: str, at: datetime) -> None:
        self.live_subscription_id = subscription_id

    @event("SubscriptionClosed")
    def _subscription_closed(self, subscription_id: str, at: datetime) -> None:
        self.live_subscription_id = None


# Personal data (SPEC §7): stored sealed under the customer's key, None once erased.
personal(Customer.ContactDetailsRecorded, "email", "name")
personal(Customer.PaymentMethodAdded, "card_masked")
# A credential (SPEC §7): sealed like personal data, gone with the erasure, never shown.
secret(Customer.PaymentMethodAdded, "billing_key")
