"""KakaoPay's look-alike inside the sandbox gateway server: the same paths, JSON and
`Authorization: SECRET_KEY ...` header as KakaoPay's online payment API (`gateways/kakaopay.py`
names the source of each), regular payments only, with the Toss look-alike's faults
(`SandboxEngine.faults`, set through `POST /sandbox/faults`: latency, error bursts,
dropped answers, refusals, lookups down, a concurrency cap, refund faults).

Test credentials: any secret key starting `DEV` (standing for KakaoPay's "Secret key(dev)"), any cid
starting `TC` (KakaoPay's test merchant codes, e.g. `TCSUBSCRIP`). The payer's approval is
`GET /sandbox/kakaopay/pay/{tid}` (the ready's redirect URLs point there): it answers 303
to approval_url with `?pg_token=...`, or with `?result=cancel|fail` to cancel_url/fail_url.
Controls: `POST /sandbox/kakaopay/sids/{sid}/outcome` {outcome} (the SandboxOutcome names),
`GET /sandbox/kakaopay/charges`, `/refunds`, `/requests` (every API request as received:
method, path, authorization, content type, JSON body); served by `sandbox_kakaopay_app`.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from gateways.kakaopay_objects import kst
from gateways.sandbox_engine import Reply, SandboxEngine, _now
from gateways.sandbox_faults import with_faults

DECLINES: dict[str, tuple[int, str] | None] = {
    "SUCCEED": None,
    "INSUFFICIENT_FUNDS": (-782, "정기 결제 API 호출이 실패했습니다. (잔액 부족)"),
    "LIMIT_EXCEEDED": (-797, "1회 결제 한도 금액을 초과했습니다."),
    "CARD_SUSPENDED": (-751, "비활성화된 SID 입니다."),
    "INVALID_BILLING_KEY": (-750, "SID가 존재하지 않습니다."),
}
ONCE = {"SERVER_ERROR_ONCE": 500, "RATE_LIMITED_ONCE": 429}


class KakaoError(Exception):
    def __init__(self, code: int, message: str, status: int = 400, processed: bool = True) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.processed = code, message, status, processed

    def reply(self) -> Reply:
        return Reply(self.status, {"error_code": self.code, "error_message": self.message}, processed=self.processed)


@dataclass
class KakaoOrder:
    tid: str
    cid: str
    order_id: str
    user_id: str
    item_name: str
    amount: int
    created_at: datetime
    sid: str | None = None
    status: str = "READY"
    approved_at: datetime | None = None
    canceled: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    pg_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tid": self.tid, "cid": self.cid, "status": self.status, "partner_order_id": self.order_id,
            "partner_user_id": self.user_id, "payment_method_type": "MONEY",
            "amount": _amount(self.amount), "canceled_amount": _amount(self.canceled),
            "cancel_available_amount": _amount(self.amount - self.canceled), "item_name": self.item_name,
            "quantity": 1, "created_at": kst(self.created_at),
            "approved_at": kst(self.approved_at) if self.approved_at else None,
            "canceled_at": self.actions[-1]["approved_at"] if self.canceled else None,
            "payment_action_details": [dict(a) for a in self.actions],
        }


def _amount(total: int) -> dict[str, int]:
    return {"total": total, "tax_free": 0, "vat": round(total / 11), "point": 0, "discount": 0, "green_deposit": 0}


def _aid() -> str:
    return "A" + secrets.token_hex(10)[:19].upper()


class KakaoSandbox:
    def __init__(self, engine: SandboxEngine, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine  # its faults apply here too
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.orders: dict[str, KakaoOrder] = {}
        self.order_ids: dict[str, str] = {}  # partner_order_id → tid
        self.sids: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []

    def charges(self) -> list[dict[str, Any]]:
        """Every approved payment (the registration's first one included), in order."""
        done = [o for o in self.orders.values() if o.approved_at and o.amount > 0]
        return [{"orderId": o.order_id, "tid": o.tid, "amount": o.amount, "canceled": o.canceled, "status": o.status}
                for o in sorted(done, key=lambda o: o.approved_at or o.created_at)]

    # -- the API ---------------------------------------------------------------------

    def ready(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        amount = _int(body, "total_amount")
        if amount < 0 or _int(body, "quantity") < 1 or _int(body, "tax_free_amount") != 0:
            raise KakaoError(-722, "금액 정보가 잘못되었습니다.")
        order = self._new_order(body, amount)
        order.urls = {k: _str(body, k) for k in ("approval_url", "cancel_url", "fail_url")}
        pay = f"{base_url.rstrip('/')}/sandbox/kakaopay/pay/{order.tid}"
        return {"tid": order.tid, "next_redirect_pc_url": pay, "next_redirect_mobile_url": pay,
                "next_redirect_app_url": pay, "android_app_scheme": None, "ios_app_scheme": None,
                "created_at": kst(order.created_at)}

    def payer_visits(self, tid: str, result: str) -> str:
        """The payer on KakaoPay's page: approves (pg_token to approval_url), cancels or fails."""
        order = self.orders.get(tid)
        if order is None or order.status != "READY":
            raise KakaoError(-721, "TID가 존재하지 않거나 진행할 수 없는 상태입니다.")
        if result == "approve":
            order.pg_token, order.status = secrets.token_hex(10), "AUTH_PASSWORD"
            return f"{order.urls['approval_url']}?{urlencode({'pg_token': order.pg_token})}"
        order.status = "QUIT_PAYMENT" if result == "cancel" else "FAIL_PAYMENT"
        return order.urls["cancel_url" if result == "cancel" else "fail_url"]

    def approve(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._order(_str(body, "tid"), _str(body, "cid"))
        if order.status == "SUCCESS_PAYMENT":
            raise KakaoError(-702, "이미 결제 완료된 TID 입니다.")
        if order.pg_token is None:
            raise KakaoError(-701, "결제 인증이 완료되지 않았습니다.")
        if _str(body, "partner_order_id") != order.order_id:
            raise KakaoError(-706, "partner_order_id가 결제 준비와 다릅니다.")
        if _str(body, "partner_user_id") != order.user_id:
            raise KakaoError(-707, "partner_user_id가 결제 준비와 다릅니다.")
        if _str(body, "pg_token") != order.pg_token:
            raise KakaoError(-708, "잘못된 pg_token 입니다.")
        order.sid = "S" + secrets.token_hex(10)[:19].upper()
        self.sids[order.sid] = {"user": order.user_id, "cid": order.cid, "active": True}
        self._approve(order, "ISSUED_SID" if order.amount == 0 else "PAYMENT")
        return self._approval(order) | {"card_info": {"kakaopay_issuer_corp": "카카오페이머니"}}

    def subscription(self, body: dict[str, Any]) -> dict[str, Any]:
        sid, user = _str(body, "sid"), _str(body, "partner_user_id")
        amount = _int(body, "total_amount")
        if amount <= 0 or _int(body, "tax_free_amount") != 0:
            raise KakaoError(-722, "금액 정보가 잘못되었습니다.")
        if _str(body, "partner_order_id") in self.order_ids:
            raise KakaoError(-785, "결제와 취소를 중복으로 요청했습니다.")
        outcome = self.outcomes.get(sid)
        if outcome in ONCE:
            self.outcomes[sid] = "SUCCEED"
            raise KakaoError(-799 if ONCE[outcome] == 429 else -780, f"injected {ONCE[outcome]}",
                             status=ONCE[outcome], processed=False)
        known = self.sids.get(sid)
        if known is None or known["cid"] != _str(body, "cid"):
            raise KakaoError(-750, "SID가 존재하지 않습니다.")
        if not known["active"]:
            raise KakaoError(-751, "비활성화된 SID 입니다.")
        if known["user"] != user:
            raise KakaoError(-753, "partner_user_id가 SID 발급 시와 다릅니다.")
        order = self._new_order(body, amount)
        order.sid = sid
        decline = DECLINES.get(outcome or "SUCCEED")
        if decline:
            order.status = "FAIL_PAYMENT"
            if decline[0] == -751:
                known["active"] = False
            raise KakaoError(*decline)
        self._approve(order, "PAYMENT")
        return self._approval(order)

    def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.engine.faults.refuse_refunds > 0:
            self.engine.faults.refuse_refunds -= 1
            raise KakaoError(-781, "결제 취소 API 호출이 실패했습니다.", processed=False)
        order = self._order(_str(body, "tid"), _str(body, "cid"))
        amount = _int(body, "cancel_amount")
        if order.status not in ("SUCCESS_PAYMENT", "PART_CANCEL_PAYMENT"):
            raise KakaoError(-784, "취소할 수 없는 상태입니다.")
        if amount <= 0 or amount > order.amount - order.canceled or _int(body, "cancel_tax_free_amount") != 0:
            raise KakaoError(-710, "취소 요청 금액이 취소 가능 금액보다 큽니다.")
        at = self._clock()
        order.canceled += amount
        order.status = "CANCEL_PAYMENT" if order.canceled == order.amount else "PART_CANCEL_PAYMENT"
        aid = _aid()
        order.actions.append({"aid": aid, "approved_at": kst(at), "amount": amount, "point_amount": 0,
                              "discount_amount": 0, "green_deposit": 0, "payment_action_type": "CANCEL",
                              "payload": body.get("payload")})
        self.refunds.append({"orderId": order.order_id, "tid": order.tid, "amount": amount, "payload": body.get("payload")})
        return order.to_json() | {"aid": aid, "approved_cancel_amount": _amount(amount), "canceled_at": kst(at)}

    def order(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._order(_str(body, "tid"), _str(body, "cid")).to_json()

    # -- helpers ----------------------------------------------------------------------

    def _new_order(self, body: dict[str, Any], amount: int) -> KakaoOrder:
        cid = _str(body, "cid")
        if not cid.startswith("TC"):
            raise KakaoError(-731, "CID가 잘못되었습니다.")
        order_id = _str(body, "partner_order_id")
        tid = "T" + secrets.token_hex(10)[:19].upper()
        order = KakaoOrder(tid, cid, order_id, _str(body, "partner_user_id"), str(body.get("item_name") or ""),
                           amount, self._clock())
        self.orders[tid], self.order_ids[order_id] = order, tid
        return order

    def _order(self, tid: str, cid: str) -> KakaoOrder:
        order = self.orders.get(tid)
        if order is None or order.cid != cid:
            raise KakaoError(-721, "TID가 존재하지 않습니다.")
        return order

    def _approve(self, order: KakaoOrder, action: str) -> None:
        order.approved_at = self._clock()
        order.status = "ISSUED_SID" if action == "ISSUED_SID" else "SUCCESS_PAYMENT"
        order.actions.append({"aid": _aid(), "approved_at": kst(order.approved_at), "amount": order.amount,
                              "point_amount": 0, "discount_amount": 0, "green_deposit": 0,
                              "payment_action_type": action, "payload": None})

    def _approval(self, order: KakaoOrder) -> dict[str, Any]:
        assert order.approved_at is not None
        return {"aid": order.actions[-1]["aid"], "tid": order.tid, "cid": order.cid, "sid": order.sid,
                "partner_order_id": order.order_id, "partner_user_id": order.user_id, "payment_method_type": "MONEY",
                "item_name": order.item_name, "quantity": 1, "amount": _amount(order.amount),
                "created_at": kst(order.created_at), "approved_at": kst(order.approved_at)}

    async def serve(self, scope: str, operation: Callable[[], dict[str, Any]]) -> Reply:
        """The Toss look-alike's faults, then the operation (KakaoError → its error reply)."""
        def run() -> Reply:
            try:
                return Reply(200, operation())
            except KakaoError as exc:
                return exc.reply()

        def error(status: int, down: bool) -> Reply:
            code, message = (-799, "sandbox gateway is down") if down else (-780, f"injected {status}")
            return KakaoError(code, message, status=status, processed=False).reply()

        return await with_faults(self.engine, scope, run, error)

def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise KakaoError(-726, f"{name}: 문자열 값이 필요합니다.")
    return value


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KakaoError(-726, f"{name}: 정수 값이 필요합니다.")
    return value
