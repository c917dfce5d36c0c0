"""PortOne V2's JSON objects as the port's values: a Payment as a `ChargeResult`, a
payment of the cursor listing as a `GatewayTransaction`, PortOne error `type`s as
`DeclineCode`s.

Source: PortOne's OpenAPI document of the V2 REST API (https://developers.portone.io/schema/v2.openapi.json,
as vendored in github.com/portone-io/server-sdk at `codegen/openapi.json`, commit f944c0a, 2026-01-22):

- `Payment` is a union on `status`: READY, PAY_PENDING, VIRTUAL_ACCOUNT_ISSUED, PAID, FAILED,
  PARTIAL_CANCELLED, CANCELLED (`PaidPayment`, `FailedPayment`, ...). Every one carries `id` (the
  paymentId we chose), `transactionId`, `storeId`, `orderName`, `amount: PaymentAmount {total,
  taxFree, discount, paid, cancelled, cancelledTaxFree}`, `currency`, `customer {id}`,
  `requestedAt`; PAID and the cancelled ones `paidAt`, `pgTxId`, `receiptUrl`; the cancelled ones
  `cancellations: [PaymentCancellation]` (a union on `status`: REQUESTED, FAILED, SUCCEEDED, each
  with `id`, `totalAmount`, `reason`, `requestedAt`; SUCCEEDED also `cancelledAt`); FAILED carries
  `failedAt` and `failure {reason, pgCode, pgMessage}`. Date-times are RFC 3339.
- Errors are `{type, message}` (`PgProviderError` adds `pgCode`, `pgMessage`), with the HTTP status
  each error schema names in `x-portone-status-code` (ALREADY_PAID 409, BILLING_KEY_NOT_FOUND 404,
  BILLING_KEY_ALREADY_DELETED 409, PAYMENT_NOT_FOUND 404, INVALID_REQUEST 400, UNAUTHORIZED 401,
  FORBIDDEN 403, MAX_TRANSACTION_COUNT_REACHED 400, CHANNEL_NOT_FOUND 404, PG_PROVIDER 502,
  CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN 409, CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT 409,
  PAYMENT_ALREADY_CANCELLED 409, PAYMENT_NOT_PAID 409).

A PG_PROVIDER error passes on the card processor's own `pgCode`: PortOne fronts many PGs, so
the code is the PG's. Toss Payments' codes (PortOne's `tosspayments` channel, and the look-alike's)
map as the Toss client maps them (`toss_objects.DECLINE_CODES`); any other PG's code is OTHER.

PortOne's states are told to the ledger in the port's (Toss') words (`domain.ports.CHARGED_STATES`):
PAID → DONE, PARTIAL_CANCELLED → PARTIAL_CANCELED, CANCELLED → CANCELED, FAILED → ABORTED, and
READY / PAY_PENDING / VIRTUAL_ACCOUNT_ISSUED → IN_PROGRESS (not settled yet).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.ports import ChargeResult, ChargeStatus, DeclineCode, GatewayError, GatewayTransaction
from gateways.toss_objects import DECLINE_CODES as TOSS_PG_CODES, parse_time, receipt_url

#: PortOne error `type` → DeclineCode (PG_PROVIDER goes by its pgCode: `decline_code_for`).
ERROR_TYPES = {
    "BILLING_KEY_NOT_FOUND": DeclineCode.INVALID_BILLING_KEY,
    "BILLING_KEY_ALREADY_DELETED": DeclineCode.INVALID_BILLING_KEY,
    "MAX_TRANSACTION_COUNT_REACHED": DeclineCode.LIMIT_EXCEEDED,
    # Our own credentials or store refused: not the card's fault, so never a hard decline.
    "UNAUTHORIZED": DeclineCode.PROVIDER_ERROR,
    "FORBIDDEN": DeclineCode.PROVIDER_ERROR,
    "CHANNEL_NOT_FOUND": DeclineCode.PROVIDER_ERROR,
    "INVALID_REQUEST": DeclineCode.OTHER,
    "PAYMENT_NOT_FOUND": DeclineCode.OTHER,
}

#: PortOne payment status → the port's (Toss') words.
STATES = {
    "PAID": "DONE",
    "PARTIAL_CANCELLED": "PARTIAL_CANCELED",
    "CANCELLED": "CANCELED",
    "FAILED": "ABORTED",
    "READY": "IN_PROGRESS",
    "PAY_PENDING": "IN_PROGRESS",
    "VIRTUAL_ACCOUNT_ISSUED": "IN_PROGRESS",
}
CHARGED = frozenset({"PAID", "PARTIAL_CANCELLED", "CANCELLED"})


def decline_code_for(error_type: str | None, http_status: int = 400, pg_code: str | None = None) -> DeclineCode:
    """The DeclineCode of a PortOne error answer (5xx and 429 without a PG's verdict: PROVIDER_ERROR)."""
    if error_type == "PG_PROVIDER":
        return TOSS_PG_CODES.get(pg_code or "", DeclineCode.OTHER)
    if http_status >= 500 or http_status == 429:
        return DeclineCode.PROVIDER_ERROR
    return ERROR_TYPES.get(error_type or "", DeclineCode.OTHER)


def provider_code(error: dict[str, Any]) -> str | None:
    """What the ledger keeps as the provider's code: `PG_PROVIDER:<pgCode>` or the error type."""
    error_type = error.get("type")
    if error_type == "PG_PROVIDER" and error.get("pgCode"):
        return f"PG_PROVIDER:{error['pgCode']}"
    return error_type if isinstance(error_type, str) else None


def cancelled_amounts(payment: dict[str, Any]) -> tuple[int, ...]:
    """The amounts of the payment's succeeded cancellations, oldest first."""
    return tuple(
        int(c["totalAmount"]) for c in payment.get("cancellations") or [] if c.get("status") == "SUCCEEDED"
    )


def cancellable(payment: dict[str, Any]) -> int:
    """What can still be cancelled: total − cancelled (PortOne's `currentCancellableAmount`)."""
    amount = payment.get("amount") or {}
    return int(amount.get("total") or 0) - int(amount.get("cancelled") or 0)


def payment_result(payment: dict[str, Any], withheld: Iterable[str] = ()) -> ChargeResult:
    """A PortOne Payment object as the port's outcome of the order (paymentId = order id)."""
    status = str(payment.get("status"))
    failure = payment.get("failure") or {}
    url = receipt_url({"receipt": {"url": payment.get("receiptUrl")}, "orderId": payment.get("id")}, withheld)
    known: dict[str, Any] = {
        "order_id": str(payment.get("id")),
        "payment_key": payment.get("id"),
        "amount": (payment.get("amount") or {}).get("total"),
        "approved_at": parse_time(payment.get("paidAt")),
        "gateway_status": STATES.get(status, status),
        "cancels": cancelled_amounts(payment),
        "receipt_url": url,
    }
    if status in ("PAID", "PARTIAL_CANCELLED"):
        return ChargeResult(ChargeStatus.APPROVED, **known)
    if status == "FAILED":
        code = failure.get("pgCode")
        return ChargeResult(
            ChargeStatus.DECLINED,
            decline_code=decline_code_for("PG_PROVIDER", pg_code=code),
            provider_code=f"PG_PROVIDER:{code}" if code else None,
            message=failure.get("pgMessage") or failure.get("reason"),
            **known,
        )
    if status == "CANCELLED":
        return ChargeResult(
            ChargeStatus.DECLINED, decline_code=DeclineCode.OTHER, message="cancelled at the provider", **known
        )
    return ChargeResult(ChargeStatus.UNKNOWN, message=f"status {status}", **known)


def transaction(item: Any) -> GatewayTransaction | None:
    """One `PaymentWithCursor` of `GET /payments-by-cursor` as a charged order, or None when
    its payment never took money (READY, FAILED, ...); GatewayError(PROVIDER_ERROR) when malformed."""
    try:
        payment = item["payment"]
        if payment["status"] not in CHARGED:
            return None
        at = parse_time(payment["paidAt"])
        if at is None:
            raise ValueError("paidAt is not a date-time")
        return GatewayTransaction(
            str(payment["id"]), str(payment["id"]), STATES[payment["status"]], int(payment["amount"]["total"]), at
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayError(DeclineCode.PROVIDER_ERROR, None, f"malformed payment listing item: {exc!r}") from exc
