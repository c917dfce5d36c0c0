"""Toss Payments' JSON objects as the port's values: a Payment as a `ChargeResult`,
a Transaction as a `GatewayTransaction`, Toss error codes as `DeclineCode`s, and the
date-times Toss' transaction listing takes.

Transaction objects, as Toss' docs show them (https://docs.tosspayments.com/guides/apis/transactions,
"거래 조회 API", `GET /v1/transactions`): a JSON array of {mId, transactionKey,
paymentKey, orderId, currency, method, customerKey, useEscrow, amount, status,
transactionAt}, chosen by transactionAt. startDate/endDate are ISO 8601 Korean local
date-times without an offset, and endDate includes its whole last unit (`...T23:59:59`
reaches the next day's 00:00:00). Toss lists every cancel as a transaction of its own
too (same orderId and paymentKey), so an order can appear there more than once.

Receipts: a Payment object carries `receipt: {url}`, the payer's receipt page, once
approved, and `receipt: null` otherwise (Toss' reference, "Payment 객체": receipt.url;
answers quoted on Toss' developer community show
`"receipt": {"url": "https://dashboard-sandbox.tosspayments.com/receipt/redirection?transactionId=<paymentKey>&ref=PX"}`
for a DONE card payment, https://techchat.tosspayments.com/m/1441239103671767130, and
`"receipt": null` for an EXPIRED one, https://techchat.tosspayments.com/m/1410526054635933798).
A cancel object has no receipt URL of its own (`receiptKey` is a cash-receipt key).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from domain.ports import ChargeResult, ChargeStatus, DeclineCode, GatewayError, GatewayTransaction

logger = logging.getLogger(__name__)

KST = timezone(timedelta(hours=9))
#: Longer receipt URLs are not kept (Toss' are about 100 characters).
MAX_RECEIPT_URL = 2048

#: SPEC §5: Toss error codes → DeclineCode; any other code is OTHER, 5xx (and 429) PROVIDER_ERROR.
DECLINE_CODES = {
    "REJECT_CARD_PAYMENT": DeclineCode.INSUFFICIENT_FUNDS,
    "EXCEED_MAX_AMOUNT": DeclineCode.LIMIT_EXCEEDED,
    "EXCEED_MAX_ONE_DAY_AMOUNT": DeclineCode.LIMIT_EXCEEDED,
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": DeclineCode.LIMIT_EXCEEDED,
    "INVALID_STOPPED_CARD": DeclineCode.CARD_SUSPENDED,
    "INVALID_REJECT_CARD": DeclineCode.CARD_SUSPENDED,
    "NOT_FOUND_BILLING_KEY": DeclineCode.INVALID_BILLING_KEY,
    "INVALID_BILLING_KEY": DeclineCode.INVALID_BILLING_KEY,
    "PROVIDER_ERROR": DeclineCode.PROVIDER_ERROR,
}

# Terminal Toss states (the product spec): only these settle a charge one way or the other.
_APPROVED = frozenset({"DONE", "PARTIAL_CANCELED"})
_FAILED = frozenset({"ABORTED", "EXPIRED"})
_CANCELED = "CANCELED"


def decline_code_for(provider_code: str | None, http_status: int = 400) -> DeclineCode:
    if http_status >= 500 or http_status == 429:
        return DeclineCode.PROVIDER_ERROR
    return DECLINE_CODES.get(provider_code or "", DeclineCode.OTHER)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    # Toss always sends an offset; a bare time would be Korean local time.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)


def toss_local(when: datetime) -> str:
    """A query date-time as Toss' listing takes it: Korean local time, no offset, in ms."""
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)  # naive: taken as UTC
    return aware.astimezone(KST).replace(tzinfo=None).isoformat(timespec="milliseconds")


def listing_range(since: datetime, until: datetime) -> tuple[str, str]:
    """[since, until) as Toss' (startDate, endDate): endDate is inclusive, so until − 1 µs
    (cut to the millisecond: covers up to `until` itself)."""
    return toss_local(since), toss_local(until - timedelta(microseconds=1))


def receipt_url(payment: dict[str, Any], withheld: Iterable[str] = ()) -> str | None:
    """The Payment object's `receipt.url`, or None: when it has none, when it is not an
    absolute http(s) URL of sane length, or when it holds any of `withheld` (the billing
    key, the secret key), plain or percent-encoded: those never reach the ledger or a
    response, whatever the provider sends. A refusal is logged without the URL."""
    receipt = payment.get("receipt")
    url = receipt.get("url") if isinstance(receipt, dict) else None
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    if len(url) > MAX_RECEIPT_URL or parts.scheme not in ("https", "http") or not parts.netloc:
        logger.warning("receipt_url_refused order_id=%s reason=malformed", payment.get("orderId"))
        return None
    if any(secret and (secret in url or quote(secret, safe="") in url) for secret in withheld):
        logger.warning("receipt_url_refused order_id=%s reason=holds_a_credential", payment.get("orderId"))
        return None
    return url


def payment_result(order_id: str, payment: dict[str, Any], withheld: Iterable[str] = ()) -> ChargeResult:
    """A Toss Payment object as the port's outcome of the order; `withheld`: see `receipt_url`."""
    status = payment.get("status")
    failure = payment.get("failure") or {}
    known: dict[str, Any] = {
        "order_id": order_id,
        "payment_key": payment.get("paymentKey"),
        "amount": payment.get("totalAmount"),
        "approved_at": parse_time(payment.get("approvedAt")),
        "gateway_status": status,
        "cancels": tuple(c["cancelAmount"] for c in payment.get("cancels") or []),
        "receipt_url": receipt_url(payment, withheld),
    }
    if status in _APPROVED:
        return ChargeResult(ChargeStatus.APPROVED, **known)
    if status in _FAILED:
        code = failure.get("code")
        return ChargeResult(
            ChargeStatus.DECLINED,
            decline_code=decline_code_for(code),
            provider_code=code,
            message=failure.get("message"),
            **known,
        )
    if status == _CANCELED:
        # Wholly given back: settled as not charged (`charged` still tells from
        # gateway_status that the money was once taken).
        return ChargeResult(
            ChargeStatus.DECLINED,
            decline_code=DeclineCode.OTHER,
            provider_code=failure.get("code"),
            message=failure.get("message") or "canceled at the provider",
            **known,
        )
    # READY, IN_PROGRESS, WAITING_FOR_DEPOSIT…: still moving, neither charged nor failed yet.
    return ChargeResult(ChargeStatus.UNKNOWN, message=f"status {status}", **known)


def transaction(item: Any) -> GatewayTransaction:
    """One item of Toss' transaction listing; GatewayError(PROVIDER_ERROR) when malformed."""
    try:
        at = parse_time(item["transactionAt"])
        if at is None:
            raise ValueError("transactionAt is not a date-time")
        return GatewayTransaction(
            str(item["orderId"]), str(item["paymentKey"]), str(item["status"]), int(item["amount"]), at
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayError(DeclineCode.PROVIDER_ERROR, None, f"malformed transaction listing item: {exc!r}") from exc
