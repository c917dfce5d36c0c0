"""Payment methods, points purchases and refunds (SPEC §4, §5).

These are the ledger halves of flows that also call a gateway: the gateway
call itself happens in `domain/billing.py`, between `begin_*` (PENDING recorded)
and `settle_payment` (outcome recorded with its effects in one save).
"""
from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import IdempotencyKeyReused, NotFound
from domain.idempotency import fingerprint
from domain.ids import NAMESPACE, customer_id, payment_id, purchase_order_id, wallet_id
from domain.payment import FAILED, SUCCEEDED, Payment
from domain.ports import ChargeResult, ChargeStatus
from domain.wallet import LOT_LIFETIME

if TYPE_CHECKING:
    from domain.ledger import Ledger


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


def purchase_lot_id(payment: Payment) -> str:
    return f"purchase-{payment.id}"


class PaymentCommands:
    def add_payment_method(
        self: Ledger, user_id: str, provider: str, billing_key: str, customer_key: str, card_masked: str | None, now: datetime
    ) -> dict[str, Any]:
        method_id = payment_method_id(user_id)

        def body() -> tuple[dict[str, Any], list[Any]]:
            customer = self.customer_or_new(user_id, now)
            customer.add_payment_method(method_id, provider, billing_key, customer_key, card_masked, now)
            return customer.payment_methods[method_id], [customer]

        return self.run(body, lock=[customer_id(user_id)])

    def remove_payment_method(self: Ledger, user_id: str, method_id: str, now: datetime) -> dict[str, Any]:
        def body() -> tuple[dict[str, Any], list[Any]]:
            customer = self.customer(user_id)
            if customer is None:
                raise NotFound(f"payment method {method_id} not found")
            customer.remove_payment_method(method_id, now)
            return customer.payment_methods[method_id], [customer]

        return self.run(body, lock=[customer_id(user_id)])

    def payment_method(self: Ledger, user_id: str, method_id: str) -> dict[str, Any]:
        customer = self.customer(user_id)
        if customer is None:
            raise NotFound(f"payment method {method_id} not found")
        return customer.method(method_id)

    def begin_points_purchase(
        self: Ledger, user_id: str, package_id: str, method_id: str, now: datetime, idempotency_key: str | None
    ) -> Payment:
        """Record the purchase's payment as PENDING (and the points as pending in the
        wallet) before any gateway call. With an idempotency key the order id is derived
        from it, so a repeat finds the same payment instead of starting a new charge."""
        package = self.catalog.package(package_id)
        method = self.payment_method(user_id, method_id)
        request_print = fingerprint("purchasePoints", {"packageId": package_id, "paymentMethodId": method_id})
        if idempotency_key is None:
            purchase = uuid.uuid4()
        else:
            purchase = uuid.uuid5(NAMESPACE, f"purchase:{user_id}:{idempotency_key}")
        order_id = purchase_order_id(purchase)

        def body() -> tuple[Payment, list[Any]]:
            existing = self.payment(payment_id(order_id))
            if existing is not None:
                if existing.purpose.get("fingerprint") != request_print:
                    raise IdempotencyKeyReused(
                        f"idempotency key {idempotency_key!r} was already used for a different purchasePoints request"
                    )
                return existing, []
            payment = Payment(
                order_id=order_id,
                order_name=f"{package.total:,} points ({package.id})",
                user_id=user_id,
                provider=method["provider"],
                kind="POINTS",
                amount=package.price,
                payment_method_id=method_id,
                subscription_id=None,
                attempt=1,
                purpose={
                    "type": "points",
                    "package_id": package.id,
                    "points": package.points,
                    "bonus": package.bonus,
                    "fingerprint": request_print,
                },
                at=now,
            )
            wallet = self.wallet_or_new(user_id, now)
            wallet.await_purchase(str(payment.id), package.total, now)
            return payment, [payment, wallet]

        return self.run(body, lock=[payment_id(order_id), wallet_id(user_id)])

    def settle_payment(self: Ledger, pay_id: Any, result: ChargeResult, now: datetime) -> Payment:
        """Record the gateway's outcome of a PENDING payment, with its effects, in one save.
        Settling an already settled payment changes nothing (a racing settler won)."""

        def body() -> tuple[Payment, list[Any]]:
            payment = self.payment(pay_id)
            if payment is None:
                raise NotFound(f"payment {pay_id} not found")
            if payment.status != "PENDING":
                return payment, []
            changed: list[Any] = [payment]
            if result.status == ChargeStatus.APPROVED:
                payment.succeed(result.payment_key or "", result.approved_at or now, now)
            else:
                code = result.decline_code.value if result.decline_code else "OTHER"
                payment.fail(code, result.provider_code, result.message, now)
            if payment.purpose.get("type") == "points":
                changed.append(self._settle_points(payment, now))
            elif payment.subscription_id is not None:
                changed.extend(self.settle_subscription_payment(payment, now))
            return payment, changed

        payment = self.payment(pay_id)
        user = payment.user_id if payment else ""
        extra = self.subscription_locks(payment) if payment else []
        return self.run(body, lock=[payment.id if payment else pay_id, wallet_id(user), *extra])

    def _settle_points(self: Ledger, payment: Payment, now: datetime) -> Any:
        wallet = self.wallet_or_new(payment.user_id, now)
        if payment.status == SUCCEEDED:
            wallet.credit(
                type="PURCHASE",
                amount=payment.purpose["points"] + payment.purpose["bonus"],
                at=now,
                description=payment.order_name,
                expires_at=now + LOT_LIFETIME,
                reference_type="payment",
                reference_id=str(payment.id),
                lot_id=purchase_lot_id(payment),
            )
        elif payment.status == FAILED:
            wallet.abandon_purchase(str(payment.id), now)
        return wallet

    def points_refund_quote(self: Ledger, payment: Payment) -> int:
        """Money back for the unspent part of a purchase's lot: floor(price × unspent / lot size).
        The lot holds the bought points and the bonus together, so spending is shared
        between them in proportion (documented in the README)."""
        wallet = self.wallet(payment.user_id)
        lot = wallet.lots.get(purchase_lot_id(payment)) if wallet else None
        if lot is None or lot["remaining"] <= 0:
            return 0
        return min(payment.refundable, payment.amount * lot["remaining"] // lot["amount"])

    def record_refund(
        self: Ledger,
        pay_id: Any,
        amount: int,
        reason: str,
        now: datetime,
        key: str | None = None,
        request_print: str | None = None,
    ) -> Payment:
        """Record a refund the provider accepted; a points purchase also takes back its lot's unspent points."""

        def body() -> tuple[Payment, list[Any]]:
            payment = self.payment(pay_id)
            if payment is None:
                raise NotFound(f"payment {pay_id} not found")
            payment.refund(amount, reason, now, key, request_print)
            changed: list[Any] = [payment]
            if payment.kind == "POINTS":
                wallet = self.wallet_or_new(payment.user_id, now)
                wallet.take_back_lot(purchase_lot_id(payment), now, f"refund of {payment.order_name}", str(payment.id))
                changed.append(wallet)
            return payment, changed

        payment = self.payment(pay_id)
        if payment is None:
            raise NotFound(f"payment {pay_id} not found")
        return self.run(body, lock=[payment.id, wallet_id(payment.user_id)])



