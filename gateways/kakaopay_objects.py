"""KakaoPay's JSON objects as the port's values: an order (주문 조회) as a `ChargeResult`,
KakaoPay's error codes as `DeclineCode`s.

Sources (KakaoPay developer center, https://developers.kakaopay.com/docs/payment/online/):
- Errors: a JSON object `{"error_code": <negative int>, "error_message": str,
  "extras": {"method_result_code": str, "method_result_message": str}}`
  (`extras` only when the payment method itself refused, e.g. `USER_LOCKED`); the codes and
  their meanings are KakaoPay's common error table ("공통 에러 코드"): -701…-799.
- Order object (`POST /online/v1/payment/order`, "주문 조회"): tid, cid, status,
  partner_order_id, partner_user_id, payment_method_type, amount {total, tax_free, vat,
  point, discount, green_deposit}, canceled_amount, cancel_available_amount, item_name,
  quantity, created_at, approved_at, canceled_at, payment_action_details [{aid,
  approved_at, amount, point_amount, discount_amount, green_deposit,
  payment_action_type (PAYMENT | CANCEL | ISSUED_SID), payload}].
- Order states: READY, SEND_TMS, OPEN_PAYMENT, SELECT_METHOD, ARS_WAITING, AUTH_PASSWORD,
  ISSUED_SID, SUCCESS_PAYMENT, PART_CANCEL_PAYMENT, CANCEL_PAYMENT, FAIL_AUTH_PASSWORD,
  QUIT_PAYMENT, FAIL_PAYMENT. Date-times are Korean local time without an offset
  (`2024-01-01T10:00:00`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from domain.ports import ChargeResult, ChargeStatus, DeclineCode

KST = timezone(timedelta(hours=9))

#: KakaoPay error codes → DeclineCode (docs/payments.md, KakaoPay); any other code is OTHER,
#: 5xx (and 429) PROVIDER_ERROR.
DECLINE_CODES = {
    # -782 "정기 결제 API 호출이 실패한 경우": the regular payment itself failed at the card or
    # KakaoPay Money (balance, card refusal); KakaoPay gives no finer public code, so it
    # is the soft decline dunning retries.
    -782: DeclineCode.INSUFFICIENT_FUNDS,
    -780: DeclineCode.INSUFFICIENT_FUNDS,  # "결제 승인 API 호출이 실패한 경우" (the first payment)
    -797: DeclineCode.LIMIT_EXCEEDED,  # "1회 결제 한도 금액을 초과할 경우"
    -752: DeclineCode.LIMIT_EXCEEDED,  # "SID가 월 최대 사용 회수를 초과한 경우"
    -750: DeclineCode.INVALID_BILLING_KEY,  # "SID가 존재하지 않는 경우"
    -751: DeclineCode.CARD_SUSPENDED,  # "비활성화된 SID로 정기 결제 API를 호출한 경우"
    -753: DeclineCode.INVALID_BILLING_KEY,  # partner_user_id is not the one the SID was issued to
}
#: "TID가 존재하지 않는 경우": the order lookup's "no such order".
NO_SUCH_TID = -721
#: "결제와 취소를 중복으로 요청한 경우": a second request for the same order.
DUPLICATE_REQUEST = -785

_APPROVED = {"SUCCESS_PAYMENT": "DONE", "PART_CANCEL_PAYMENT": "PARTIAL_CANCELED"}
_CANCELED = "CANCEL_PAYMENT"
_FAILED = frozenset({"FAIL_PAYMENT", "QUIT_PAYMENT", "FAIL_AUTH_PASSWORD"})


def decline_code_for(error_code: int | None, http_status: int = 400) -> DeclineCode:
    if http_status >= 500 or http_status == 429:
        return DeclineCode.PROVIDER_ERROR
    return DECLINE_CODES.get(error_code, DeclineCode.OTHER) if error_code is not None else DeclineCode.OTHER


def error_of(body: dict[str, Any]) -> tuple[int | None, str | None, str]:
    """(error_code, method_result_code, message) of a KakaoPay error body."""
    code = body.get("error_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    extras = body.get("extras") if isinstance(body.get("extras"), dict) else {}
    method = extras.get("method_result_code") if isinstance(extras.get("method_result_code"), str) else None
    message = body.get("error_message") or extras.get("method_result_message") or ""
    return code, method, str(message)


def provider_code(code: int | None, method_code: str | None) -> str | None:
    """How a KakaoPay error is kept: `-782` or `-782/USER_LOCKED`."""
    if code is None:
        return None
    return f"{code}/{method_code}" if method_code else str(code)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)


def kst(when: datetime) -> str:
    """A date-time as KakaoPay writes it: Korean local time, seconds, no offset."""
    return when.astimezone(KST).replace(tzinfo=None).isoformat(timespec="seconds")


def _total(amount: Any) -> int | None:
    total = amount.get("total") if isinstance(amount, dict) else None
    return total if isinstance(total, int) else None


def cancels_of(order: dict[str, Any]) -> tuple[int, ...]:
    """The amounts of the order's CANCEL actions, oldest first (KakaoPay may sign them)."""
    actions = order.get("payment_action_details") or []
    return tuple(
        abs(int(a.get("amount") or 0)) for a in actions
        if isinstance(a, dict) and a.get("payment_action_type") == "CANCEL"
    )


def order_result(order_id: str, order: dict[str, Any]) -> ChargeResult:
    """A KakaoPay order object (주문 조회) as the port's outcome, with its cancels."""
    status = order.get("status")
    gateway_status = _APPROVED.get(status) or ("CANCELED" if status == _CANCELED else status)
    known: dict[str, Any] = {
        "order_id": order_id,
        "payment_key": order.get("tid"),
        "amount": _total(order.get("amount")),
        "approved_at": parse_time(order.get("approved_at")),
        "gateway_status": gateway_status,
        "cancels": cancels_of(order),
    }
    if status in _APPROVED:
        return ChargeResult(ChargeStatus.APPROVED, **known)
    if status == _CANCELED:
        return ChargeResult(ChargeStatus.DECLINED, decline_code=DeclineCode.OTHER,
                            message="canceled at the provider", **known)
    if status in _FAILED:
        return ChargeResult(ChargeStatus.DECLINED, decline_code=DeclineCode.OTHER, provider_code=status,
                            message=f"KakaoPay order {status}", **known)
    return ChargeResult(ChargeStatus.UNKNOWN, message=f"status {status}", **known)


def approval_result(order_id: str, approved: dict[str, Any]) -> ChargeResult:
    """The answer of a regular payment (`/online/v1/payment/subscription`): it is only
    given for an approved payment."""
    return ChargeResult(
        ChargeStatus.APPROVED,
        order_id,
        payment_key=approved.get("tid"),
        amount=_total(approved.get("amount")),
        approved_at=parse_time(approved.get("approved_at")),
        gateway_status="DONE",
    )
