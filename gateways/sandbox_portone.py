"""The sandbox's PortOne look-alike: billing keys, billing-key payments and their cancellations
in PortOne V2's shapes (see `gateways/portone_objects.py` for the source of each object), kept
in memory. `sandbox_portone_app.py` serves it over HTTP beside the Toss look-alike.

What the browser SDK would do (issue a billing key for a card) is a sandbox control here:
`issue_billing_key(card_number, customer_id, store_id)`. Cards follow the sandbox's test cards
(`sandbox_engine.TEST_CARD_DECLINES`): a declined card's charge fails as PortOne's PG_PROVIDER
error carrying the Toss PG's code (PortOne's `tosspayments` channel), e.g. pgCode
REJECT_CARD_PAYMENT; `set_outcome` changes a billing key's later charges like
`setSandboxOutcome` does for the sandbox provider.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateways.sandbox_engine import OUTCOME_DECLINES, OUTCOME_ONCE, TEST_CARD_DECLINES, mask
from gateways.sandbox_orders import KST, rfc3339

MERCHANT_ID = "merchant-sandbox"
#: PortOne's listing: 10 payments unless asked, at most 1000 (`GetAllPaymentsByCursorBody.size`).
DEFAULT_SIZE = 10
MAX_SIZE = 1000


class PortOneError(Exception):
    """A PortOne error answer: `{type, message}` (+ pgCode, pgMessage for PG_PROVIDER)."""

    def __init__(self, status: int, type_: str, message: str, processed: bool = True, **extra: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.extra = status, type_, message, extra
        #: False: answered without acting (never dropped as a fault).
        self.processed = processed

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, **self.extra}


def pg_error(decline: tuple[int, str, str]) -> PortOneError:
    """A card processor's decline (Toss PG's words) as PortOne passes it on."""
    _, code, message = decline
    return PortOneError(502, "PG_PROVIDER", f"PG사 오류: {message}", pgCode=code, pgMessage=message)


@dataclass
class IssuedKey:
    billing_key: str
    card_number: str
    customer_id: str
    store_id: str
    issued_at: datetime
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        info = {
            "status": "DELETED" if self.deleted else "ISSUED",
            "billingKey": self.billing_key,
            "merchantId": MERCHANT_ID,
            "storeId": self.store_id,
            "methods": [{"type": "BillingKeyPaymentMethodCard", "card": {"number": mask(self.card_number)}}],
            "channels": [{"type": "TEST", "id": "channel-sandbox", "key": "channel-key-sandbox", "pgProvider": "TOSSPAYMENTS"}],
            "customer": {"id": self.customer_id},
            "issuedAt": rfc3339(self.issued_at),
        }
        return info | ({"deletedAt": rfc3339(self.issued_at)} if self.deleted else {})


@dataclass
class PortOnePayment:
    id: str
    store_id: str
    billing_key: str
    order_name: str
    total: int
    customer_id: str
    card_number: str
    requested_at: datetime
    status: str = "PAID"
    paid_at: datetime | None = None
    failure: dict[str, str] | None = None
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    transaction_id: str = field(default_factory=lambda: secrets.token_hex(12))
    cursor: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def cancelled(self) -> int:
        return sum(c["totalAmount"] for c in self.cancellations)

    def to_json(self) -> dict[str, Any]:
        payment: dict[str, Any] = {
            "status": self.status,
            "id": self.id,
            "transactionId": self.transaction_id,
            "merchantId": MERCHANT_ID,
            "storeId": self.store_id,
            "method": {"type": "PaymentMethodCard", "card": {"number": mask(self.card_number)}},
            "channel": {"type": "TEST", "id": "channel-sandbox", "key": "channel-key-sandbox", "pgProvider": "TOSSPAYMENTS"},
            "version": "V2",
            "billingKey": self.billing_key,
            "requestedAt": rfc3339(self.requested_at),
            "updatedAt": rfc3339(self.requested_at),
            "statusChangedAt": rfc3339(self.requested_at),
            "orderName": self.order_name,
            "amount": {
                "total": self.total, "taxFree": 0, "discount": 0, "paid": self.total if self.paid_at else 0,
                "cancelled": self.cancelled, "cancelledTaxFree": 0,
            },
            "currency": "KRW",
            "customer": {"id": self.customer_id},
            "disputes": [],
        }
        if self.paid_at:
            payment |= {"paidAt": rfc3339(self.paid_at), "pgTxId": f"pg_{self.transaction_id}", "cancellations": [dict(c) for c in self.cancellations]}
        if self.cancellations:
            payment["cancelledAt"] = self.cancellations[-1]["cancelledAt"]
        if self.failure:
            payment |= {"failedAt": rfc3339(self.requested_at), "failure": dict(self.failure)}
        return payment


class PortOneBook:
    """Every billing key issued and payment requested at the look-alike."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(KST)) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.keys: dict[str, IssuedKey] = {}
        self.payments: dict[str, PortOnePayment] = {}
        self.outcomes: dict[str, str] = {}
        #: Every API request received: {method, path, query, headers, body}.
        self.requests: list[dict[str, Any]] = []

    # -- sandbox controls (what PortOne's browser SDK and a test would do) ----------

    def issue_billing_key(self, card_number: str, customer_id: str, store_id: str) -> IssuedKey:
        if not (len(card_number) == 16 and card_number.isdigit()) or not customer_id or not store_id:
            raise PortOneError(400, "INVALID_REQUEST", "cardNumber (16 digits), customerId and storeId are required")
        key = IssuedKey(f"billing-key-{secrets.token_hex(12)}", card_number, customer_id, store_id, self._clock())
        self.keys[key.billing_key] = key
        return key

    def set_outcome(self, billing_key: str, outcome: str) -> None:
        if outcome not in OUTCOME_DECLINES and outcome not in OUTCOME_ONCE:
            raise PortOneError(400, "INVALID_REQUEST", f"unknown outcome {outcome!r}")
        if billing_key not in self.keys:
            raise PortOneError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
        self.outcomes[billing_key] = outcome

    # -- the PortOne API ---------------------------------------------------------

    def billing_key(self, billing_key: str, store_id: str) -> dict[str, Any]:
        key = self.keys.get(billing_key)
        if key is None or key.store_id != store_id:
            raise PortOneError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
        return key.to_json()

    def pay(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        store_id, billing_key = body["storeId"], body["billingKey"]
        existing = self.payments.get(payment_id)
        if existing is not None and existing.status != "FAILED":
            raise PortOneError(409, "ALREADY_PAID", "결제가 이미 완료되었습니다.")
        key = self.keys.get(billing_key)
        if key is None or key.store_id != store_id:
            raise PortOneError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
        if key.deleted:
            raise PortOneError(409, "BILLING_KEY_ALREADY_DELETED", "빌링키가 이미 삭제되었습니다.")
        outcome = self.outcomes.get(billing_key)
        if outcome in OUTCOME_ONCE:
            self.outcomes[billing_key] = "SUCCEED"
            status, _, message = OUTCOME_ONCE[outcome]
            raise PortOneError(status, "INTERNAL_SERVER_ERROR", message, processed=False)
        customer_id = (body.get("customer") or {}).get("id") or ""
        payment = PortOnePayment(
            payment_id, store_id, billing_key, body["orderName"], body["amount"]["total"], customer_id,
            key.card_number, self._clock(),
        )
        self.payments[payment_id] = payment
        if outcome == "INVALID_BILLING_KEY":
            payment.status, payment.failure = "FAILED", {"reason": "빌링키가 존재하지 않습니다."}
            raise PortOneError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
        decline = OUTCOME_DECLINES.get(outcome) if outcome is not None else TEST_CARD_DECLINES.get(key.card_number)
        if decline:
            error = pg_error(decline)
            payment.status = "FAILED"
            payment.failure = {"reason": error.message, "pgCode": decline[1], "pgMessage": decline[2]}
            raise error
        payment.paid_at = payment.requested_at
        return {"payment": {"pgTxId": f"pg_{payment.transaction_id}", "paidAt": rfc3339(payment.paid_at)}}

    def payment(self, payment_id: str, store_id: str | None) -> PortOnePayment:
        payment = self.payments.get(payment_id)
        if payment is None or (store_id is not None and payment.store_id != store_id):
            raise PortOneError(404, "PAYMENT_NOT_FOUND", "결제 건이 존재하지 않습니다.")
        return payment

    def cancel(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payment = self.payment(payment_id, body.get("storeId"))
        if payment.status == "CANCELLED":
            raise PortOneError(409, "PAYMENT_ALREADY_CANCELLED", "결제가 이미 취소되었습니다.")
        if payment.paid_at is None:
            raise PortOneError(409, "PAYMENT_NOT_PAID", "결제가 완료되지 않았습니다.")
        balance = payment.total - payment.cancelled
        expected = body.get("currentCancellableAmount")
        if expected is not None and expected != balance:
            raise PortOneError(409, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN", "취소 가능 잔액 검증에 실패했습니다.")
        amount = balance if body.get("amount") is None else body["amount"]
        if amount <= 0:
            raise PortOneError(400, "INVALID_REQUEST", "취소 금액은 0보다 커야 합니다.")
        if amount > balance:
            raise PortOneError(409, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT", "취소 가능 금액을 초과했습니다.")
        now = rfc3339(self._clock())
        cancellation = {
            "status": "SUCCEEDED", "id": f"cancel-{secrets.token_hex(8)}", "pgCancellationId": secrets.token_hex(8),
            "totalAmount": amount, "taxFreeAmount": 0, "vatAmount": 0, "reason": body["reason"],
            "cancelledAt": now, "requestedAt": now, "trigger": "API",
        }
        payment.cancellations.append(cancellation)
        payment.status = "CANCELLED" if amount == balance else "PARTIAL_CANCELLED"
        return {"cancellation": dict(cancellation)}

    def listing(self, request: dict[str, Any]) -> dict[str, Any]:
        """`GET /payments-by-cursor`: payments created in [from, until], in creation order."""
        size = request.get("size") or DEFAULT_SIZE
        if not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise PortOneError(400, "INVALID_REQUEST", f"size: 1 이상 {MAX_SIZE} 이하이어야 합니다.")
        try:
            start = datetime.fromisoformat(request["from"]) if request.get("from") else None
            end = datetime.fromisoformat(request["until"]) if request.get("until") else None
        except (TypeError, ValueError):
            raise PortOneError(400, "INVALID_REQUEST", "from, until: RFC 3339 날짜-시간이 필요합니다.") from None
        found = [
            p for p in self.payments.values()
            if (request.get("storeId") in (None, p.store_id))
            and (start is None or p.requested_at >= start) and (end is None or p.requested_at <= end)
        ]
        cursor = request.get("cursor")
        if cursor is not None:
            cursors = [p.cursor for p in found]
            if cursor not in cursors:
                raise PortOneError(400, "INVALID_REQUEST", "잘못된 커서입니다.")
            found = found[cursors.index(cursor) + 1:]
        return {"items": [{"payment": p.to_json(), "cursor": p.cursor} for p in found[:size]]}
