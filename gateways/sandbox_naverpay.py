"""NaverPay's look-alike inside the sandbox gateway server: the same paths, headers, form and
JSON bodies and `{code, message, body}` envelope as NaverPay's recurrent payments
(`gateways/naverpay.py` names the source of each), with the Toss look-alike's faults
(`sandbox_faults`).

Test credentials: a partner id starting `np_`, any client id and chain id, a client secret
starting `test_`. The payer's registration page is `GET /sandbox/naverpay/payments/{reserveId}`
(SUBLEDGER_NAVER_PAGE_URL = `<sandbox>/sandbox/naverpay`: PortOne's look-alike owns `/payments/…`):
it answers 303 to returnUrl with `?resultCode=Success&reserveId=…&tempReceiptId=…`, or `?result=cancel|fail` →
resultCode UserCancel / Fail. Controls: `POST /sandbox/naverpay/recurrents/{recurrentId}/outcome`
{outcome}, `POST /sandbox/naverpay/cancels-later` {count} (the next cancels are answered
`CancelNotComplete` and done only at `POST /sandbox/naverpay/complete-cancels`; meanwhile
another cancel of the payment is answered `PreCancelNotComplete`), `GET /sandbox/naverpay/charges`, `/refunds`, `/requests` (every API
request as received: method, path, query, headers, content type, form or JSON body). Like
NaverPay's history (mipong's transcription, `gateways/naverpay.py`), its period listing refuses
a startTime..endTime over 31 days and a rowsPerPage outside 1-100 (20 when not given).
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from gateways.naverpay_objects import APPROVAL_TYPE, APPROVED_STATE, SUCCESS, parse_ymdt, ymdt
from gateways.sandbox_engine import Reply, SandboxEngine, _now
from gateways.sandbox_faults import with_faults

DECLINES: dict[str, tuple[str, str] | None] = {
    "SUCCEED": None,
    "INSUFFICIENT_FUNDS": ("Fail", "결제 승인에 실패했습니다. (잔액 부족)"),
    "CARD_SUSPENDED": ("OwnerAuthFail", "본인 명의의 결제수단이 아닙니다."),
}
ONCE = {"SERVER_ERROR_ONCE": 500, "RATE_LIMITED_ONCE": 429}
MAX_PERIOD = timedelta(days=31)  # the longest startTime..endTime the history answers


class NaverError(Exception):
    def __init__(self, code: str, message: str, status: int = 200, processed: bool = True,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.processed, self.body = code, message, status, processed, body

    def reply(self) -> Reply:
        answer: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.body is not None:
            answer["body"] = self.body
        return Reply(self.status, answer, processed=self.processed)


@dataclass
class NaverPayment:
    payment_id: str
    recurrent_id: str
    order_id: str  # merchantPayId, shown as merchantPayKey
    user_id: str
    product_name: str
    amount: int
    approved: bool = False
    pending_cancel: int = 0  # a cancel answered CancelNotComplete, not done yet
    entries: list[dict[str, Any]] = field(default_factory=list)

    def entry(self, type_code: str, amount: int, at: datetime, state: str = APPROVED_STATE) -> dict[str, Any]:
        entry = {
            "paymentId": self.payment_id, "payHistId": "H" + secrets.token_hex(8), "admissionState": state,
            "admissionTypeCode": type_code, "admissionYmdt": ymdt(at), "tradeConfirmYmdt": None,
            "totalPayAmount": amount, "applyPayAmount": amount, "primaryPayAmount": amount, "npointPayAmount": 0,
            "giftCardPayAmount": 0, "discountPayAmount": 0, "taxScopeAmount": amount, "taxExScopeAmount": 0,
            "environmentDepositAmount": 0, "merchantPayKey": self.order_id, "merchantUserKey": self.user_id,
            "primaryPayMeans": "CARD", "productName": self.product_name,
            "cancelRequester": "2" if type_code != APPROVAL_TYPE else None,
        }
        self.entries.append(entry)
        return entry

    @property
    def canceled(self) -> int:
        return sum(e["totalPayAmount"] for e in self.entries if e["admissionTypeCode"] != APPROVAL_TYPE)


class NaverSandbox:
    def __init__(self, engine: SandboxEngine, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.reservations: dict[str, dict[str, Any]] = {}
        self.recurrents: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, NaverPayment] = {}
        self.outcomes: dict[str, str] = {}
        self.replays: dict[str, Reply] = {}  # X-NaverPay-Idempotency-Key → the first answer
        self.requests: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        self.cancels_later = 0  # the next cancels answer CancelNotComplete (done at complete_cancels)

    def charges(self) -> list[dict[str, Any]]:
        done = [p for p in self.payments.values() if p.approved]
        return [{"orderId": p.order_id, "paymentId": p.payment_id, "amount": p.amount, "canceled": p.canceled}
                for p in sorted(done, key=lambda p: p.entries[0]["admissionYmdt"])]

    # -- registration ------------------------------------------------------------------

    def regist_reserve(self, form: dict[str, str]) -> dict[str, Any]:
        if _str(form, "actionType") not in ("NEW", "CHANGE"):
            raise NaverError("Fail", "actionType: NEW 또는 CHANGE")
        for name in ("productCode", "productName", "returnUrl", "merchantUserId"):
            _str(form, name)
        _amount(form, "totalPayAmount", minimum=0)
        reserve_id = secrets.token_urlsafe(24)
        self.reservations[reserve_id] = {"user": form["merchantUserId"], "returnUrl": form["returnUrl"], "temp": None,
                                         "actionType": form["actionType"]}
        return {"reserveId": reserve_id}

    def payer_visits(self, reserve_id: str, result: str) -> str:
        reservation = self.reservations.get(reserve_id)
        if reservation is None or reservation["temp"] is not None:
            raise NaverError("TimeExpired", "등록 예약이 없거나 만료되었습니다.")
        if result == "approve":
            reservation["temp"] = "TP" + secrets.token_hex(10).upper()
            query = {"resultCode": SUCCESS, "reserveId": reserve_id, "tempReceiptId": reservation["temp"]}
        else:
            query = {"resultCode": "UserCancel" if result == "cancel" else "Fail", "reserveId": reserve_id}
        return f"{reservation['returnUrl']}?{urlencode(query)}"

    def regist_approval(self, form: dict[str, str]) -> dict[str, Any]:
        reservation = self.reservations.get(_str(form, "reserveId"))
        if reservation is None or reservation["temp"] is None:
            raise NaverError("TimeExpired", "등록 예약이 없거나 만료되었습니다.")
        if reservation.get("recurrentId"):
            raise NaverError("AlreadyComplete", "이미 등록이 완료되었습니다.")
        if _str(form, "tempReceiptId") != reservation["temp"]:
            raise NaverError("Fail", "tempReceiptId가 일치하지 않습니다.")
        recurrent_id = "RC" + secrets.token_hex(10).upper()
        reservation["recurrentId"] = recurrent_id
        self.recurrents[recurrent_id] = {"user": reservation["user"], "active": True}
        return {"reserveId": form["reserveId"], "tempReceiptId": form["tempReceiptId"], "recurrentId": recurrent_id,
                "actionType": reservation["actionType"], "preRecurrentId": None}

    # -- payments ----------------------------------------------------------------------

    def pay_reserve(self, form: dict[str, str]) -> dict[str, Any]:
        recurrent_id, user = _str(form, "recurrentId"), _str(form, "merchantUserId")
        amount = _amount(form, "totalPayAmount")
        if _amount(form, "taxScopeAmount", 0) + _amount(form, "taxExScopeAmount", 0) != amount:
            raise NaverError("Fail", "과세/면세 금액의 합이 결제 금액과 다릅니다.")
        known = self.recurrents.get(recurrent_id)
        if known is None or not known["active"] or known["user"] != user:
            raise NaverError("Fail", "유효하지 않은 정기/반복결제 등록 번호입니다.")
        payment_id = "NP" + secrets.token_hex(9).upper()
        self.payments[payment_id] = NaverPayment(payment_id, recurrent_id, _str(form, "merchantPayId"), user,
                                                 _str(form, "productName"), amount)
        return {"recurrentId": recurrent_id, "paymentId": payment_id}

    def pay_approval(self, form: dict[str, str]) -> dict[str, Any]:
        payment = self._payment(_str(form, "paymentId"))
        if _str(form, "recurrentId") != payment.recurrent_id:
            raise NaverError("Fail", "결제 예약의 정기/반복결제 등록 번호와 다릅니다.")
        if payment.approved:
            raise NaverError("AlreadyComplete", "이미 승인된 결제입니다.")
        if any(p.approved and p.order_id == payment.order_id for p in self.payments.values()):
            raise NaverError("AlreadyComplete", "이미 승인된 가맹점 결제번호입니다.")
        outcome = self.outcomes.get(payment.recurrent_id)
        if outcome in ONCE:
            self.outcomes[payment.recurrent_id] = "SUCCEED"
            raise NaverError("Fail", f"injected {ONCE[outcome]}", status=ONCE[outcome], processed=False)
        decline = DECLINES.get(outcome or "SUCCEED")
        if decline:
            payment.entry(APPROVAL_TYPE, payment.amount, self._clock(), state="FAIL")
            if decline[0] == "OwnerAuthFail":
                self.recurrents[payment.recurrent_id]["active"] = False
            raise NaverError(*decline)
        payment.approved = True
        detail = payment.entry(APPROVAL_TYPE, payment.amount, self._clock())
        return {"recurrentId": payment.recurrent_id, "paymentId": payment.payment_id, "detail": dict(detail)}

    def cancel(self, form: dict[str, str]) -> dict[str, Any]:
        if self.engine.faults.refuse_refunds > 0:
            self.engine.faults.refuse_refunds -= 1
            raise NaverError("Fail", "결제 취소에 실패했습니다.", processed=False)
        payment = self._payment(_str(form, "paymentId"))
        amount = _amount(form, "cancelAmount")
        _str(form, "cancelReason")
        if _str(form, "cancelRequester") not in ("1", "2"):
            raise NaverError("Fail", "cancelRequester")
        if payment.pending_cancel:
            raise NaverError("PreCancelNotComplete", "이전 취소 요청이 처리 중입니다.")
        if not payment.approved or amount > payment.amount - payment.canceled:
            raise NaverError("Fail", "취소 가능 금액을 초과했습니다.")
        if _amount(form, "taxScopeAmount", 0) + _amount(form, "taxExScopeAmount", 0) != amount:
            raise NaverError("Fail", "과세/면세 금액의 합이 취소 금액과 다릅니다.")
        at, rest = self._clock(), payment.amount - payment.canceled - amount
        answer = {"paymentId": payment.payment_id, "payHistId": "", "primaryPayMeans": "CARD",
                  "primaryPayCancelAmount": amount, "primaryPayRestAmount": rest, "npointCancelAmount": 0,
                  "npointRestAmount": 0, "cancelYmdt": ymdt(at), "totalRestAmount": rest, "applyRestAmount": rest,
                  "taxScopeAmount": amount, "taxExScopeAmount": 0, "taxScopeRestAmount": rest, "taxExScopeRestAmount": 0}
        if self.cancels_later > 0:  # taken, done at `complete_cancels`: only the history shows it then
            self.cancels_later -= 1
            payment.pending_cancel = amount
            raise NaverError("CancelNotComplete", "취소가 완료되지 않았습니다. 자동으로 재처리됩니다.", body=answer)
        return answer | {"payHistId": self._cancel(payment, amount, at)["payHistId"]}

    def complete_cancels(self) -> int:
        """NaverPay finishing the cancels it answered CancelNotComplete: answers how many."""
        pending = [p for p in self.payments.values() if p.pending_cancel]
        for payment in pending:
            amount, payment.pending_cancel = payment.pending_cancel, 0
            self._cancel(payment, amount, self._clock())
        return len(pending)

    def _cancel(self, payment: NaverPayment, amount: int, at: datetime) -> dict[str, Any]:
        whole = amount == payment.amount and payment.canceled == 0  # a split refund's last part is still 04
        self.refunds.append({"orderId": payment.order_id, "paymentId": payment.payment_id, "amount": amount})
        return payment.entry("03" if whole else "04", amount, at)

    def history_of(self, payment_id: str) -> dict[str, Any]:
        return _page([dict(e) for e in self._payment(payment_id).entries], 1, 100)

    def history(self, query: Any) -> dict[str, Any]:
        if not isinstance(query, dict):
            raise NaverError("Fail", "요청 본문이 JSON 객체가 아닙니다.")
        since, until = parse_ymdt(query.get("startTime")), parse_ymdt(query.get("endTime"))
        if since is None or until is None or until < since:
            raise NaverError("Fail", "startTime/endTime: yyyyMMddHHmmss")
        if until - since > MAX_PERIOD:
            raise NaverError("Fail", "검색 기간은 31일 이내여야 합니다.")
        rows = int(query.get("rowsPerPage") or 20)
        if not 1 <= rows <= 100:
            raise NaverError("Fail", "rowsPerPage: 1~100")
        entries = [dict(e) for p in self.payments.values() for e in p.entries
                   if since <= (parse_ymdt(e["admissionYmdt"]) or since) <= until]
        entries.sort(key=lambda e: e["admissionYmdt"])
        return _page(entries, int(query.get("pageNumber") or 1), rows)

    def _payment(self, payment_id: str) -> NaverPayment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise NaverError("Fail", "존재하지 않는 결제번호입니다.")
        return payment

    async def serve(self, scope: str, operation: Callable[[], dict[str, Any]], key: str | None = None) -> Reply:
        """Faults, then the operation; an idempotency key seen before answers 409 with the first answer."""
        if key and key in self.replays:
            first = self.replays[key]
            return Reply(409, first.body)

        def run() -> Reply:
            try:
                reply = Reply(200, {"code": SUCCESS, "message": "성공", "body": operation()})
            except NaverError as exc:
                reply = exc.reply()
            if key and reply.processed:
                self.replays[key] = reply
            return reply

        def error(status: int, down: bool) -> Reply:
            return NaverError("Fail", "sandbox gateway is down" if down else f"injected {status}", status=status,
                              processed=False).reply()

        return await with_faults(self.engine, scope, run, error)


def _page(entries: list[dict[str, Any]], page: int, rows: int) -> dict[str, Any]:
    pages = max(1, -(-len(entries) // max(rows, 1)))
    chunk = entries[(page - 1) * rows: page * rows]
    return {"list": chunk, "totalCount": len(entries), "responseCount": len(chunk), "totalPageCount": pages,
            "currentPageNumber": page}


def _str(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise NaverError("Fail", f"{name}: 값이 필요합니다.")
    return value


def _amount(form: dict[str, Any], name: str, minimum: int = 1) -> int:
    value = form.get(name)
    if not isinstance(value, str) or not value.isdigit() or int(value) < minimum:
        raise NaverError("Fail", f"{name}: {minimum} 이상의 정수가 필요합니다.")
    return int(value)
