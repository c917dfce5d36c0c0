"""NaverPay's JSON objects as the port's values: a payment history entry (결제내역 조회) and a
recurrent-payment approval (반복결제 승인) as `ChargeResult`s, NaverPay's result codes as
`DeclineCode`s.

Sources (named in full in `gateways/naverpay.py`'s docstring and docs/payments.md, NaverPay):
- OFFICIAL: the envelope `{code, message, body}`, `code` "Success" or a failure code (NaverPay
  developer center, "default response format"; NaverPayDev/agent-integration
  docs/common/response-format.md).
- SECONDARY (code calling the live API; NaverPay's own per-API tables could not be read):
  failure codes Fail, InvalidMerchant, TimeExpired, AlreadyOnGoing, AlreadyComplete,
  OwnerAuthFail, and the cancel's CancelNotComplete (taken, completed later): iceCreamParlor/mipong
  packages/payments/src/payments/naverpay/type.ts; the cancel's PreCancelNotComplete (an earlier
  cancel still in progress) and CancelNotComplete again: KimYeonWook511/commerce-backend
  src/main/java/com/commerce/payment/infrastructure/pg/naverpay/code/CancelCode.java. The history entry and approval `detail`
  fields paymentId, payHistId, admissionState, admissionTypeCode, admissionYmdt (yyyyMMddHHmmss,
  mipong: YYYYMMDDHH24MMSS), totalPayAmount, merchantPayKey: mipong, the Postman collection
  Coster97/naverpay-payment-api-automation and the merchant code named in `gateways/naverpay.py`.
- admissionTypeCode `01` original approval, `03` whole cancel, `04` partial cancel (the last
  part of a split refund is still 04): KimYeonWook511/commerce-backend (a merchant whose
  issue #319 reports calls to NaverPay's sandbox) .../naverpay/code/AdmissionTypeCode.java and
  client/response/body/HistoryBody.java; a Spring scheduler (01 승인, 03 취소; index file
  27728889220); an admin grid (01 결제, 03 취소, 04 취소; index file 21859304191).
- admissionState `SUCCESS` for a done entry, the only other value a failure (no in-progress
  value): commerce-backend's GatewayAdapter.java and HistoryBody.java; merchants' test doubles
  (index files 58494490711, 9228420114). The failure's spelling (the look-alike uses `FAIL`) is
  in no source and not relied on. That `admissionYmdt` is Korean time: assumed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from domain.ports import ChargeResult, ChargeStatus, DeclineCode

KST = timezone(timedelta(hours=9))
SUCCESS = "Success"

#: NaverPay failure codes → DeclineCode (docs/payments.md, NaverPay); any other code is OTHER,
#: a 5xx PROVIDER_ERROR.
DECLINE_CODES = {
    # "Fail" on a recurrent approval: the payment itself failed (card, bank, NaverPay Money);
    # NaverPay gives no finer public code, so it is the soft decline dunning retries.
    "Fail": DeclineCode.INSUFFICIENT_FUNDS,
    "OwnerAuthFail": DeclineCode.CARD_SUSPENDED,  # the means is not the payer's own: hard
    "InvalidMerchant": DeclineCode.OTHER,
    "TimeExpired": DeclineCode.OTHER,
}
#: Codes that say another request for the same payment went (or is going) through: the
#: outcome is the earlier one's, settled by lookup, never a decline.
IN_FLIGHT = frozenset({"AlreadyOnGoing", "AlreadyComplete"})
#: A cancel's answer: NaverPay took it and completes it itself (payHistId empty; its history
#: shows the cancel once complete); it is not to be sent again.
CANCEL_NOT_COMPLETE = "CancelNotComplete"

# admissionTypeCode: from merchant code (module docstring), not from NaverPay's reference.
APPROVAL_TYPE = "01"
CANCEL_TYPES = frozenset({"03", "04"})
# admissionState of a done approval or cancel: merchant code (module docstring).
APPROVED_STATE = "SUCCESS"


def decline_code_for(code: str | None, http_status: int = 200) -> DeclineCode:
    if http_status >= 500 or http_status == 429:
        return DeclineCode.PROVIDER_ERROR
    return DECLINE_CODES.get(code or "", DeclineCode.OTHER)


def envelope(body: Any) -> tuple[str | None, str, dict[str, Any]]:
    """(code, message, body) of a NaverPay answer; code None when it is not NaverPay's envelope."""
    if not isinstance(body, dict):
        return None, "", {}
    code = body.get("code") if isinstance(body.get("code"), str) else None
    inner = body.get("body") if isinstance(body.get("body"), dict) else {}
    return code, str(body.get("message") or ""), inner


def ymdt(when: datetime) -> str:
    """A date-time as NaverPay's history takes and gives it: Korean local `yyyyMMddHHmmss`."""
    return when.astimezone(KST).strftime("%Y%m%d%H%M%S")


def parse_ymdt(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) != 14 or not value.isdigit():
        return None
    return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=KST)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def is_cancel(entry: dict[str, Any]) -> bool:
    return entry.get("admissionTypeCode") in CANCEL_TYPES


def history_result(order_id: str, entries: list[dict[str, Any]]) -> ChargeResult | None:
    """One payment's history entries (its approval, then any cancels) as the port's outcome."""
    approvals = [e for e in entries if not is_cancel(e)]
    if not approvals:
        return None
    approval = approvals[0]
    cancels = tuple(abs(_int(e.get("totalPayAmount")) or 0) for e in entries
                    if is_cancel(e) and e.get("admissionState") == APPROVED_STATE)
    amount = _int(approval.get("totalPayAmount"))
    known: dict[str, Any] = {
        "order_id": order_id, "payment_key": approval.get("paymentId"), "amount": amount,
        "approved_at": parse_ymdt(approval.get("admissionYmdt")), "cancels": cancels,
    }
    if approval.get("admissionState") != APPROVED_STATE:
        state = str(approval.get("admissionState"))
        return ChargeResult(ChargeStatus.DECLINED, decline_code=DeclineCode.OTHER, provider_code=state,
                            message=f"NaverPay payment {state}", gateway_status=state, **known)
    refunded = sum(cancels)
    status = "CANCELED" if amount is not None and refunded >= amount else ("PARTIAL_CANCELED" if refunded else "DONE")
    return ChargeResult(ChargeStatus.APPROVED, gateway_status=status, **known)


def approval_result(order_id: str, body: dict[str, Any]) -> ChargeResult:
    """The body of a successful recurrent approval (`recurrent/pay/v3/approval`)."""
    detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
    found = history_result(order_id, [detail | {"paymentId": detail.get("paymentId") or body.get("paymentId")}])
    if found is None or found.status != ChargeStatus.APPROVED:
        return ChargeResult(ChargeStatus.UNKNOWN, order_id, payment_key=body.get("paymentId"),
                            message="NaverPay answered Success without an approved detail")
    return found
