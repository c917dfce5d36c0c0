"""The sandbox's book of orders: Toss Payment objects, their cancels (refunds), the
sandbox's own record of the refunds it processed, and the approvals that Toss'
transaction listing (`GET /v1/transactions`) shows.

Transaction items follow Toss' Transaction object as its docs show it
(https://docs.tosspayments.com/guides/apis/transactions, "거래 조회 API"): mId,
transactionKey, paymentKey, orderId, currency, method, customerKey, useEscrow,
amount, status, transactionAt. startDate/endDate are ISO 8601 date-times, Korean
local time when they carry no offset, and endDate covers its whole last unit
(`...T23:59:59` lists up to the next day's 00:00:00, `...T23:59:59.999` up to the
same instant); an unknown startingAfter is 400 INVALID_TRANSACTION_KEY.
The sandbox lists approvals only (Toss also lists every cancel as a transaction of
its own), each with the order's current status.

Receipts: Toss' Payment object carries `receipt: {url}` once the payment is approved
(e.g. `https://dashboard-sandbox.tosspayments.com/receipt/redirection?transactionId=
<paymentKey>&ref=PX` for a DONE card payment) and `receipt: null` for one that never
was (an EXPIRED payment), as answers quoted on Toss' developer community show
(https://techchat.tosspayments.com/m/1441239103671767130,
https://techchat.tosspayments.com/m/1410526054635933798). The sandbox names its
receipts the same way on its own base (`<base>/receipt/redirection?transactionId=
<paymentKey>`) and serves them itself (`sandbox_app`). Toss' cancel objects carry no
receipt URL (only `receiptKey`, a cash-receipt key), so neither do the sandbox's.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

KST = timezone(timedelta(hours=9), "KST")
#: Toss' listing: 100 items unless asked, at most 10000 (its reference's `limit`).
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
_FRACTION = re.compile(r"\.(\d+)")


class TossError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, reply: tuple[int, str, str]) -> TossError:
        return cls(*reply)


class Unprocessed(TossError):
    """Answered without acting on the request: never kept as the idempotent reply,
    so a retry under the same Idempotency-Key is processed anew."""


NOT_FOUND_PAYMENT = (404, "NOT_FOUND_PAYMENT", "존재하지 않는 결제 정보 입니다.")


def mask(card_number: str) -> str:
    return f"{card_number[:4]}********{card_number[-4:]}"


def rfc3339(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


@dataclass
class Order:
    payment_key: str
    order_id: str
    order_name: str
    amount: int
    card_number: str
    requested_at: datetime
    customer_key: str = ""
    status: str = "DONE"
    approved_at: datetime | None = None
    #: The approval's transactionKey (Toss' listing cursor), once approved.
    approval_key: str | None = None
    balance: int = 0
    cancels: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, str] | None = None
    #: The receipt page (`receipt_url`), from the moment the order is approved.
    receipt_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mId": "tvivarepublica",
            "version": "2022-11-16",
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "orderName": self.order_name,
            "status": self.status,
            "type": "BILLING",
            "currency": "KRW",
            "totalAmount": self.amount,
            "balanceAmount": self.balance,
            "requestedAt": rfc3339(self.requested_at),
            "approvedAt": rfc3339(self.approved_at) if self.approved_at else None,
            "method": "카드",
            "card": {"number": mask(self.card_number), "amount": self.amount, "approveNo": "00000000"},
            "cancels": [dict(c) for c in self.cancels] or None,
            "failure": self.failure,
            "receipt": {"url": self.receipt_url} if self.receipt_url else None,
        }

    def transaction_json(self) -> dict[str, Any]:
        assert self.approved_at is not None
        return {
            "mId": "tvivarepublica",
            "transactionKey": self.approval_key,
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "currency": "KRW",
            "method": "카드",
            "customerKey": self.customer_key,
            "useEscrow": False,
            "amount": self.amount,
            "status": self.status,
            "transactionAt": rfc3339(self.approved_at),
        }


class OrderBook:
    """Every order the sandbox was asked to charge, by order id and by payment key."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self._by_payment_key: dict[str, Order] = {}
        self._approved: list[Order] = []  # in approval order
        self._refunds: list[dict[str, Any]] = []

    def add(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._by_payment_key[order.payment_key] = order

    def by_payment_key(self, payment_key: str) -> Order:
        order = self._by_payment_key.get(payment_key)
        if order is None:
            raise TossError.of(NOT_FOUND_PAYMENT)
        return order

    def approve(self, order: Order, at: datetime, base_url: str) -> None:
        """Approve `order` at `at`; its receipt is served on `base_url` (the sandbox's own)."""
        order.status, order.approved_at, order.balance = "DONE", at, order.amount
        order.approval_key = secrets.token_hex(16)
        order.receipt_url = receipt_url(base_url, order.payment_key)
        self._approved.append(order)

    def receipt(self, payment_key: str) -> Order:
        """The order whose receipt `payment_key` names: approved ones only (404 otherwise, like an unknown key)."""
        order = self._by_payment_key.get(payment_key)
        if order is None or order.receipt_url is None:
            raise TossError.of(NOT_FOUND_PAYMENT)
        return order

    def complete(
        self, order_id: str, status: str, at: datetime, failure: dict[str, str], base_url: str
    ) -> dict[str, Any]:
        """An IN_PROGRESS order settled as DONE (approved `at`) or ABORTED with `failure`."""
        order = self.orders.get(order_id)
        if order is None:
            raise TossError.of(NOT_FOUND_PAYMENT)
        if order.status != "IN_PROGRESS":
            raise TossError(400, "NOT_IN_PROGRESS_PAYMENT", f"order is {order.status}, not IN_PROGRESS")
        if status == "DONE":
            self.approve(order, at, base_url)
        elif status == "ABORTED":
            order.status, order.failure = "ABORTED", failure
        else:
            raise TossError(400, "INVALID_REQUEST", "status: DONE 또는 ABORTED 이어야 합니다.")
        return order.to_json()

    def charges(self) -> list[dict[str, Any]]:
        return [
            {"orderId": o.order_id, "amount": o.amount, "paymentKey": o.payment_key, "receiptUrl": o.receipt_url}
            for o in self._approved
        ]

    def refunds(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._refunds]

    def cancelled_total(self, order_id: str) -> int:
        order = self.orders.get(order_id)
        return sum(c["cancelAmount"] for c in order.cancels) if order else 0

    def cancel(
        self, payment_key: str, reason: str, amount: int | None, at: datetime, idempotency_key: str | None
    ) -> dict[str, Any]:
        order = self._by_payment_key.get(payment_key)
        if order is None:
            raise TossError.of(NOT_FOUND_PAYMENT)
        if order.status == "CANCELED":
            raise TossError(400, "ALREADY_CANCELED_PAYMENT", "이미 취소된 결제 입니다.")
        if order.status not in ("DONE", "PARTIAL_CANCELED"):
            raise TossError(403, "NOT_CANCELABLE_PAYMENT", "취소 할 수 없는 결제 입니다.")
        amount = order.balance if amount is None else amount
        if amount <= 0:
            raise TossError(400, "INVALID_REQUEST", "취소 금액은 0보다 커야 합니다.")
        if amount > order.balance:
            raise TossError(403, "NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.")
        order.balance -= amount
        order.status = "CANCELED" if order.balance == 0 else "PARTIAL_CANCELED"
        transaction_key = secrets.token_hex(16)
        order.cancels.append(
            {
                "cancelAmount": amount,
                "cancelReason": reason,
                "canceledAt": rfc3339(at),
                "transactionKey": transaction_key,
                "cancelStatus": "DONE",
            }
        )
        self._refunds.append(
            {
                "orderId": order.order_id,
                "paymentKey": payment_key,
                "amount": amount,
                "idempotencyKey": idempotency_key,
                "transactionKey": transaction_key,
            }
        )
        return order.to_json()

    def transactions(
        self, start_date: str, end_date: str, starting_after: str | None, limit: int | None
    ) -> list[dict[str, Any]]:
        """One page of the approvals made in [startDate, endDate], oldest first."""
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise TossError(400, "INVALID_REQUEST", f"limit: 1 이상 {MAX_LIMIT} 이하이어야 합니다.")
        start, _ = _instant(start_date, "startDate")
        end, unit = _instant(end_date, "endDate")
        found = [o for o in self._approved if o.approved_at and start <= o.approved_at < end + unit]
        if starting_after is not None:
            keys = [o.approval_key for o in found]
            if starting_after not in keys:
                raise TossError(400, "INVALID_TRANSACTION_KEY", "잘못된 페이징 키 입니다.")
            found = found[keys.index(starting_after) + 1 :]
        return [o.transaction_json() for o in found[:limit]]


def receipt_url(base_url: str, payment_key: str) -> str:
    """Where the sandbox serves an approved order's receipt: Toss' shape on the sandbox's base."""
    return f"{base_url.rstrip('/')}/receipt/redirection?transactionId={quote(payment_key, safe='')}"


def _instant(value: str, name: str) -> tuple[datetime, timedelta]:
    """A query date-time (KST without an offset) and the unit it was given in."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TossError(400, "INVALID_REQUEST", f"{name}: ISO 8601 날짜-시간이 필요합니다.") from None
    fraction = _FRACTION.search(value)
    unit = timedelta(seconds=10 ** -len(fraction.group(1))) if fraction else timedelta(seconds=1)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)), unit
