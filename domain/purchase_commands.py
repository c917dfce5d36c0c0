"""The wallet's side of points purchases and their refunds (SPEC §4, §5).

A purchase is recorded PENDING here (`begin_points_purchase`); `domain/payments`
calls the gateway and settles it, asking `points_handler` what settling means for
the wallet (a lot credited) and what a refund takes back (the lot's points, in the
refund's own transaction) or, when refused, gives back.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.idempotency import Idempotency
from domain.ids import purchase_order_id, wallet_id
from domain.payments.book import PurposeHandler
from domain.payments.payment import FAILED, SUCCEEDED, Payment, Refund
from domain.payments.refunds import Reservation, points_refund_quote
from domain.wallet import LOT_LIFETIME

if TYPE_CHECKING:
    from domain.ledger import Ledger


def purchase_lot_id(payment: Payment) -> str:
    return f"purchase-{payment.id}"


class PointsPurchases:
    """Handed the ledger; `ledger.purchases`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def begin_points_purchase(
        self, user_id: str, package_id: str, method_id: str, now: datetime, idempotency_key: str | None
    ) -> Payment:
        """Record the purchase's payment as PENDING (and the points as pending in the
        wallet) before any gateway call. A repeat of the idempotency key answers the same
        payment (in whatever state it reached) instead of starting a new charge."""
        package = self.ledger.catalog.package(package_id)
        method = self.ledger.customers.payment_method(user_id, method_id)
        order_id = purchase_order_id(uuid.uuid4())

        def body() -> tuple[Payment, list[Any]]:
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
                purpose={"type": "points", "package_id": package.id, "points": package.points, "bonus": package.bonus},
                at=now,
            )
            wallet = self.ledger.wallet_or_new(user_id, now)
            wallet.await_purchase(str(payment.id), package.total, now)
            return payment, [payment, wallet]

        request = {"packageId": package_id, "paymentMethodId": method_id}
        return self.ledger.run(
            body, lock=[wallet_id(user_id)],
            idempotency=Idempotency(user_id, "purchasePoints", idempotency_key, request, now),
            replay=lambda stored: self.ledger.payment(stored["payment_id"]), encode=lambda payment: {"payment_id": str(payment.id)},
        )

    # ------------------------------------------------------------ what money means for the wallet
    def points_handler(self) -> PurposeHandler:
        return PurposeHandler(
            settle=self._settle_points,
            locks=lambda payment: [wallet_id(payment.user_id)],
            reserve=self._reserve_points_refund,
            release=self._release_points_refund,
        )

    def _settle_points(self, payment: Payment, now: datetime) -> list[Any]:
        wallet = self.ledger.wallet_or_new(payment.user_id, now)
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
        return [wallet]

    def _reserve_points_refund(self, payment: Payment, amount: int | None, now: datetime) -> Reservation:
        """SPEC §4: every point still in the purchase's lot is taken back, in the refund's own
        transaction, and the money is decided from those points: a spend racing the refund
        either lands first (and lowers the refund) or finds the points gone."""
        wallet = self.ledger.wallet(payment.user_id)
        lot_id = purchase_lot_id(payment)
        lot = wallet.lots.get(lot_id) if wallet else None
        quote = points_refund_quote(payment, lot["amount"], lot["remaining"]) if lot else 0
        if wallet is None or lot is None or quote <= 0:
            return Reservation(limit=0)
        taken = wallet.take_back_lot(lot_id, now, f"refund of {payment.order_name}", str(payment.id))
        return Reservation(limit=quote, points=taken, lot_id=lot_id, aggregates=(wallet,))

    def _release_points_refund(self, payment: Payment, refund: Refund, now: datetime) -> list[Any]:
        wallet = self.ledger.wallet(payment.user_id)
        if wallet is None or not refund.points or refund.lot_id is None:
            return []
        wallet.restore_lot(refund.lot_id, refund.points, now, f"refund of {payment.order_name} refused", str(payment.id))
        return [wallet]
