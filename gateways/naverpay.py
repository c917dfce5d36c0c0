"""`PaymentGateway` over NaverPay's recurrent payments (정기/반복결제).

Sources. OFFICIAL (NaverPay developer center): headers `X-Naver-Client-Id`,
`X-Naver-Client-Secret`, `X-NaverPay-Chain-Id`; URLs `https://{dev.apis.naver.com |
apis.naver.com}/{partner id}/naverpay/payments/{API version}/{API name}`; the envelope `{code,
message, body}`; payment pages `https://{test-m.pay.naver.com | m.pay.naver.com}/payments/{reservation
id}` (https://developers.pay.naver.com/docs/v2/api, "API common guide";
https://developer.pay.naver.com/docs/v1/api/recurrent, overview); `X-NaverPay-Idempotency-Key`
(at most 64 characters; a repeat answers HTTP 409 with the first answer; "support is stated per
API") and the HTTP statuses 400/401/404/409/503 (docs.pay.naver.com common pages, as published
in NaverPay's own repository NaverPayDev/agent-integration,
packages/payments-mcp/test/__fixtures__/developers/docs/common/idempotency.md and
llms-full.txt). The per-API field tables of the recurrent API could not be read.
SECONDARY, every path and field below: the Postman collection Coster97/naverpay-payment-api-
automation (postman/Collection.json, folder "결제형자동", requests form-encoded unless said):
- `recurrent/regist/v1/reserve` (등록예약): productCode, productName, totalPayAmount, returnUrl,
  merchantUserId → body.reserveId. (Also in iceCreamParlor/mipong, lib/src/payments/index.ts.)
  The payer is sent to the payment page with the reserveId and comes back to returnUrl with
  resultCode, reserveId and tempReceiptId (the parameter names: unnamed published merchant code).
- `recurrent/regist/v1/approval` (등록완료): reserveId, tempReceiptId → body {reserveId,
  tempReceiptId, recurrentId, …}. The recurrentId is the billing key.
- `recurrent/pay/v3/reserve` (결제예약): recurrentId, totalPayAmount, taxScopeAmount,
  taxExScopeAmount, productName, merchantPayId, merchantUserId → body.paymentId. Charges nothing.
- `recurrent/pay/v3/approval` (결제승인): paymentId → body {recurrentId, paymentId, detail
  {paymentId, payHistId, admissionState, admissionTypeCode, admissionYmdt, totalPayAmount,
  merchantPayKey, …}}.
- `v1/cancel` (결제취소, whole or part): paymentId, cancelAmount, cancelReason, cancelRequester
  (2: the merchant), taxScopeAmount, taxExScopeAmount → body {paymentId, payHistId,
  totalRestAmount, cancelYmdt, …}.
- `v2.3/list/history/{paymentId}` (결제내역조회 특정; JSON, no body) and `v2.3/list/history`
  (기간; JSON {startTime, endTime} as yyyyMMddHHmmss, paging pageNumber, rowsPerPage from the
  collection's one-time folder) → body {list: [entry…], totalCount, totalPageCount,
  currentPageNumber}. The collection uses v2.3; mipong names v2.2 for the same listing.
Result codes: `gateways/naverpay_objects.py`. That merchantPayId comes back as an entry's
merchantPayKey is assumed (docs/payments.md, NaverPay).

Exactly once: a charge is a reservation (nothing charged, safe to repeat) then an approval sent
once with `X-NaverPay-Idempotency-Key` = the order id (whether the recurrent approval honors
it is not stated in what could be read). A failure after the approval may have reached NaverPay
is UNKNOWN: the settle job looks the order up by scanning the history of the last
`LOOKUP_DAYS` days for the entry whose merchantPayKey is the order id (by paymentId when known).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from domain.errors import SandboxOnly
from domain.ports import (
    BillingKey, ChargeResult, ChargeStatus, DeclineCode, GatewayError, GatewayTransaction, Redirect, RefundResult,
    RefundStatus,
)
from domain.tracing import NO_TRACER, Tracer
from gateways.careful_post import Sent, careful_post
from gateways.naverpay_objects import (
    APPROVAL_TYPE, APPROVED_STATE, IN_FLIGHT, SUCCESS, approval_result, decline_code_for, envelope, history_result,
    is_cancel, parse_ymdt, ymdt,
)

#: What the registration page shows (productName) and the merchant's product code of it.
REGISTRATION_PRODUCT = ("SUBLEDGER", "정기결제 등록")
#: How far back a lookup by order id scans NaverPay's history.
LOOKUP_DAYS = 31
ROWS_PER_PAGE = 100
MERCHANT = "2"  # cancelRequester: the merchant's administrator


class _Answer:
    def __init__(self, sent: Sent) -> None:
        self.sent = sent
        status = sent.response.status_code if sent.response is not None else None
        self.status = status
        self.code, self.message, self.body = envelope(sent.json())

    @property
    def ok(self) -> bool:
        return self.status in (200, 409) and self.code == SUCCESS

    @property
    def definite(self) -> bool:
        """NaverPay refused in its own words: nothing was done."""
        return (self.status is not None and self.status < 500 and self.status != 429
                and self.code not in (None, SUCCESS) and self.code not in IN_FLIGHT)

    def failure(self) -> GatewayError:
        if self.status is None:
            return GatewayError(DeclineCode.NETWORK_ERROR, None, self.sent.error)
        return GatewayError(decline_code_for(self.code, self.status), self.code, self.message or f"HTTP {self.status}")


def naver_key(value: str) -> str:
    """NaverPay's key alphabet (A-Z a-z 0-9 _ -), at most 64 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", value)[:64]


class NaverPayGateway:
    provider = "NAVER_PAY"
    #: Orders are found by NaverPay's paymentId when known (`domain.ports.lookup_charge`).
    looks_up_by_payment_key = True

    def __init__(
        self, base_url: str, partner_id: str, client_id: str, client_secret: str, chain_id: str, page_url: str,
        transport: httpx.AsyncBaseTransport | None = None, retry_base_seconds: float = 1.0, timeout: float = 60.0,
    ) -> None:
        self.page_url = page_url.rstrip("/")
        self._retry_base_seconds = retry_base_seconds
        self._client = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/{partner_id}/naverpay/payments/", transport=transport, timeout=timeout,
            headers={"X-Naver-Client-Id": client_id, "X-Naver-Client-Secret": client_secret,
                     "X-NaverPay-Chain-Id": chain_id},
        )
        self.tracer: Tracer = NO_TRACER

    # -- registration (reserve → the payer approves → approval) ----------------------

    async def begin_registration(self, customer_key: str, approval_url: str, cancel_url: str, fail_url: str) -> Redirect:
        code, name = REGISTRATION_PRODUCT
        answer = await self._post("regist_reserve", "recurrent/regist/v1/reserve", retry_sent=True, data={
            "productCode": code, "productName": name, "totalPayAmount": 0, "returnUrl": approval_url,
            "merchantUserId": customer_key,
        })
        reserve_id = answer.body.get("reserveId")
        if not answer.ok or not isinstance(reserve_id, str):
            raise answer.failure()
        page = f"{self.page_url}/payments/{reserve_id}"
        return Redirect(reserve_id, page, page, page)

    async def complete_registration(self, registration_id: str, approval_token: str, customer_key: str) -> BillingKey:
        answer = await self._post("regist_approval", "recurrent/regist/v1/approval",
                                  data={"reserveId": registration_id, "tempReceiptId": approval_token})
        recurrent_id = answer.body.get("recurrentId")
        if not answer.ok or not isinstance(recurrent_id, str):
            raise answer.failure()
        return BillingKey(billing_key=recurrent_id, card_masked="NaverPay")

    async def issue_billing_key(self, auth_key: str, customer_key: str) -> BillingKey:
        raise GatewayError(DeclineCode.OTHER, None,
                           "NaverPay needs beginPaymentMethodRegistration, then its registrationId with the tempReceiptId")

    # -- charges, refunds, lookups ------------------------------------------------------

    async def charge(self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str) -> ChargeResult:
        reserved = await self._post("pay_reserve", "recurrent/pay/v3/reserve", retry_sent=True, data={
            "recurrentId": billing_key, "totalPayAmount": amount, "taxScopeAmount": amount, "taxExScopeAmount": 0,
            "productName": order_name[:128], "merchantPayId": order_id, "merchantUserId": customer_key,
        })
        payment_id = reserved.body.get("paymentId")
        if not reserved.ok or not isinstance(payment_id, str):
            # A reservation charges nothing: any failure of it is a decline.
            failure = reserved.failure() if reserved.code != SUCCESS else GatewayError(
                DeclineCode.PROVIDER_ERROR, None, "NaverPay reserved without a paymentId")
            return ChargeResult(ChargeStatus.DECLINED, order_id, decline_code=failure.decline_code,
                                provider_code=failure.provider_code, message=failure.message)
        answer = await self._post("charge", "recurrent/pay/v3/approval", data={"paymentId": payment_id},
                                  headers={"X-NaverPay-Idempotency-Key": naver_key(order_id)})
        if answer.ok:
            return approval_result(order_id, answer.body)
        if answer.definite:
            return ChargeResult(ChargeStatus.DECLINED, order_id, payment_key=payment_id,
                                decline_code=decline_code_for(answer.code, answer.status or 200),
                                provider_code=answer.code, message=answer.message)
        if not answer.sent.sent:
            return ChargeResult(ChargeStatus.DECLINED, order_id, decline_code=DeclineCode.NETWORK_ERROR,
                                message=answer.sent.error)
        return ChargeResult(ChargeStatus.UNKNOWN, order_id, payment_key=payment_id, decline_code=DeclineCode.NETWORK_ERROR,
                            provider_code=answer.code, message=answer.message or answer.sent.error)

    async def refund(self, payment_key: str, amount: int, reason: str, idempotency_key: str) -> RefundResult:
        answer = await self._post("refund", "v1/cancel", headers={"X-NaverPay-Idempotency-Key": naver_key(idempotency_key)},
                                  data={"paymentId": payment_key, "cancelAmount": amount, "cancelReason": reason[:100] or "refund",
                                        "cancelRequester": MERCHANT, "taxScopeAmount": amount, "taxExScopeAmount": 0})
        if answer.ok:
            return RefundResult(RefundStatus.DONE, refunded_amount=amount)
        if answer.definite or not answer.sent.sent:
            return RefundResult(RefundStatus.REFUSED, provider_code=answer.code, message=answer.message or answer.sent.error)
        return RefundResult(RefundStatus.UNKNOWN, provider_code=answer.code,
                            message=f"refund outcome unknown, look the payment up: {answer.message or answer.sent.error}")

    async def lookup_order(self, order_id: str, payment_key: str | None = None) -> ChargeResult | None:
        if payment_key:
            found = await self.lookup_payment(payment_key)
            if found is not None and found.order_id != order_id:
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "NaverPay answered another order for this paymentId")
            return found
        now = datetime.now(timezone.utc)
        mine = [e for e in await self._history(now - timedelta(days=LOOKUP_DAYS), now + timedelta(minutes=5))
                if e.get("merchantPayKey") == order_id]
        payment_ids = {e.get("paymentId") for e in mine}
        if len(payment_ids) > 1:
            raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "NaverPay holds several payments for this order")
        return history_result(order_id, mine)

    async def lookup_payment(self, payment_key: str) -> ChargeResult | None:
        answer = await self._post("lookup", f"v2.3/list/history/{payment_key}", retry_sent=True,
                                  headers={"Content-Type": "application/json"})
        if not answer.ok:
            if answer.definite:
                raise answer.failure()
            raise GatewayError(DeclineCode.NETWORK_ERROR, None, f"payment lookup impossible: {answer.message or answer.sent.error}")
        entries = [e for e in answer.body.get("list") or [] if isinstance(e, dict) and e.get("paymentId") == payment_key]
        order_id = next((str(e.get("merchantPayKey")) for e in entries if not is_cancel(e)), "")
        return history_result(order_id, entries)

    async def list_transactions(self, since: datetime, until: datetime) -> list[GatewayTransaction]:
        transactions = []
        for entry in await self._history(since, until):
            at = parse_ymdt(entry.get("admissionYmdt"))
            if entry.get("admissionTypeCode") != APPROVAL_TYPE or entry.get("admissionState") != APPROVED_STATE or at is None:
                continue
            transactions.append(GatewayTransaction(str(entry.get("merchantPayKey")), str(entry.get("paymentId")), "DONE",
                                                   int(entry.get("totalPayAmount") or 0), at))
        return transactions

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        raise SandboxOnly("setSandboxOutcome needs the sandbox gateway, not NAVER_PAY")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _history(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Every history entry admitted in [since, until], all pages."""
        entries: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self._post("history", "v2.3/list/history", retry_sent=True, json={
                "startTime": ymdt(since), "endTime": ymdt(until), "pageNumber": page, "rowsPerPage": ROWS_PER_PAGE})
            if not answer.ok:
                raise GatewayError(DeclineCode.NETWORK_ERROR, answer.code,
                                   f"payment history impossible: {answer.message or answer.sent.error}")
            entries += [e for e in answer.body.get("list") or [] if isinstance(e, dict)]
            if page >= int(answer.body.get("totalPageCount") or 1):
                return entries
            page += 1

    async def _post(self, operation: str, path: str, retry_sent: bool = False, **request: Any) -> _Answer:
        attributes = {"subledger.gateway.provider": self.provider, "subledger.gateway.operation": operation}
        with self.tracer.span("gateway.call", attributes) as span:
            answer = _Answer(await careful_post(self._client, self.provider, operation, path, retry_sent=retry_sent,
                                                retry_base_seconds=self._retry_base_seconds, **request))
            span.set_attribute("subledger.gateway.settled", answer.ok or answer.definite)
            if answer.status is not None:
                span.set_attribute("http.response.status_code", answer.status)
            return answer

