"""`PaymentGateway` over NaverPay's recurrent payments (정기/반복결제).

Sources, checked 2026-12-02 (the per-field table is docs/payments.md, NaverPay):
- OFFICIAL, NaverPay's developer center (stored copies of https://developers.pay.naver.com/docs/v2/api,
  "API common guide", and https://developer.pay.naver.com/docs/v1/api/recurrent, overview) and
  NaverPay's own repository NaverPayDev/agent-integration
  (packages/payments-mcp/test/__fixtures__/developers/llms-full.txt and docs/common/*.md, a copy
  of docs.pay.naver.com's common pages): the headers `X-Naver-Client-Id`,
  `X-Naver-Client-Secret`, `X-NaverPay-Chain-Id`; URLs `https://{dev.apis.naver.com |
  apis.naver.com}/{partner id}/naverpay/payments/{API version}/{API name}`; the envelope `{code,
  message, body}`; payment pages `https://{test-m.pay.naver.com | m.pay.naver.com}/payments/{id}`;
  `X-NaverPay-Idempotency-Key` (at most 64 characters, A-Z a-z 0-9 _ -; a repeat answers HTTP
  409 with the first answer; "support is stated per API"); HTTP statuses 400/401/404/409/503.
  NaverPay's per-API field tables for recurrent payments are NOT in any stored copy (the stored
  recurrent page ends before them; docs.pay.naver.com's API pages are not stored), so no path,
  field or value below is confirmed by a primary source.
- SECONDARY, independent code calling the live API (each path and field names its sources in
  docs/payments.md): the Postman collection Coster97/naverpay-payment-api-automation
  (postman/Collection.json, folder "결제형자동"; its domains are left blank, its returnUrl is
  on dev-pay-test.pay.naver.com);
  the client library iceCreamParlor/mipong (packages/payments/src/payments/naverpay/type.ts and
  packages/payments/src/payments/index.ts at 4db3239, whose comments transcribe NaverPay's field
  descriptions); four merchant integrations in public repositories the code index does not name
  (its file ids): PHP `Wing\\API\\Naver\\NaverSimplePay` (49317545119), a PHP subscription
  controller's `billing_payment_naver` (26989553166), Spring `com.chest.scheduler.NpayRecurReqst`
  (27728889220), Java `com.dkitec.barocle.util.payment.NaverPayUtil` (40725713968). Where they agree:
  - `recurrent/regist/v1/reserve` (form): productCode, productName, totalPayAmount, returnUrl →
    body.reserveId; actionType NEW (mipong, NaverPayUtil, a Java client, index file 36002003800;
    not in the Postman collection); merchantUserId: the Postman collection only.
  - the payer returns to returnUrl with GET resultCode, resultMessage, reserveId,
    tempReceiptId (the NaverSimplePay merchant's return handler, index file 49380698304; a
    WooCommerce plugin reads reserveId and tempReceiptId, index file 12690432975).
  - `recurrent/regist/v1/approval` (form): reserveId, tempReceiptId → body.recurrentId.
  - `recurrent/pay/v3/reserve` (form): recurrentId, totalPayAmount, taxScopeAmount,
    taxExScopeAmount, productName, merchantPayId, merchantUserId → body {recurrentId, paymentId}.
  - `recurrent/pay/v3/approval` (form): recurrentId, paymentId (the Postman collection sends
    paymentId alone) → body {recurrentId, paymentId, detail {paymentId, payHistId,
    admissionState, admissionTypeCode, admissionYmdt, totalPayAmount, merchantPayKey, …}}.
  - `v1/cancel` (form): paymentId, cancelAmount, cancelReason, cancelRequester (2: the
    merchant), taxScopeAmount, taxExScopeAmount → body {paymentId, payHistId, totalRestAmount,
    cancelYmdt, …}; code `CancelNotComplete`: taken, NaverPay completes it and is not to be
    asked again (mipong; KimYeonWook511/commerce-backend, .../naverpay/code/CancelCode.java,
    which folds it as success "as the specification says not to retry"); `PreCancelNotComplete`
    refuses a cancel while an earlier one is incomplete (commerce-backend).
  - the history, JSON: `v2.3/list/history/{paymentId}` and `v2.3/list/history` {startTime,
    endTime (yyyyMMddHHmmss, at most 31 days apart), pageNumber, rowsPerPage (1-100)}: the
    Postman collection's paths; mipong and the merchant code use `v2.2/list/history` with
    {paymentId} in the body for the same listing.
  - history entries: admissionTypeCode 01/03/04, admissionState `SUCCESS` (`naverpay_objects`).
  Also KimYeonWook511/commerce-backend (one-time payments checked against NaverPay's sandbox,
  src/main/java/com/commerce/payment/infrastructure/pg/naverpay/).
Still assumptions (flagged in docs/payments.md): a 0-won registration reserve (every source
sends the product's price), merchantPayId coming back as merchantPayKey, that the payer's page
for a registration is `{page url}/payments/{reserveId}`, and whether the recurrent approval
and the cancel honor `X-NaverPay-Idempotency-Key`.

Exactly once: a charge is a reservation (nothing charged, safe to repeat) then an approval sent
once with `X-NaverPay-Idempotency-Key` = the order id. A failure after the approval may have
reached NaverPay is UNKNOWN: the settle job looks the payment up by its paymentId, or, without
one, scans the last `MAX_WINDOW` of history for the entry whose merchantPayKey is the order id.
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
from gateways.default_transport import network_transport
from gateways.naverpay_objects import (
    APPROVAL_TYPE, APPROVED_STATE, CANCEL_NOT_COMPLETE, IN_FLIGHT, SUCCESS, approval_result, decline_code_for, envelope,
    history_result, is_cancel, parse_ymdt, ymdt,
)

#: What the registration page shows (productName) and the merchant's product code of it.
REGISTRATION_PRODUCT = ("SUBLEDGER", "정기결제 등록")
#: The longest search period NaverPay's history answers (31 days); a lookup by order id scans
#: the last such period, a longer listing is asked in consecutive periods.
MAX_WINDOW = timedelta(days=31)
ROWS_PER_PAGE = 100  # NaverPay's limit: 1 to 100 rows a page (20 when not given)
MERCHANT = "2"  # cancelRequester: the merchant's administrator
NEW_REGISTRATION = "NEW"  # actionType of a registration reserve (CHANGE replaces a targetRecurrentId)


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
            base_url=f"{base_url.rstrip('/')}/{partner_id}/naverpay/payments/", transport=transport or network_transport(), timeout=timeout,
            headers={"X-Naver-Client-Id": client_id, "X-Naver-Client-Secret": client_secret,
                     "X-NaverPay-Chain-Id": chain_id},
        )
        self.tracer: Tracer = NO_TRACER

    # -- registration (reserve → the payer approves → approval) ----------------------

    async def begin_registration(self, customer_key: str, approval_url: str, cancel_url: str, fail_url: str) -> Redirect:
        code, name = REGISTRATION_PRODUCT
        answer = await self._post("regist_reserve", "recurrent/regist/v1/reserve", retry_sent=True, data={
            "actionType": NEW_REGISTRATION, "productCode": code, "productName": name, "totalPayAmount": 0,
            "returnUrl": approval_url, "merchantUserId": customer_key,
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
        answer = await self._post("charge", "recurrent/pay/v3/approval",
                                  data={"recurrentId": billing_key, "paymentId": payment_id},
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
        if answer.code == CANCEL_NOT_COMPLETE:
            # NaverPay took the cancel and completes it itself, and is not to be asked again: done
            # on its side (its history shows the cancel once complete; reconciliation checks it).
            return RefundResult(RefundStatus.DONE, refunded_amount=amount, provider_code=answer.code,
                                message=f"NaverPay completes this cancel itself: {answer.message}")
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
        until = datetime.now(timezone.utc) + timedelta(minutes=5)
        mine = [e for e in await self._history(until - MAX_WINDOW, until)
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
        """Every history entry admitted in [since, until], all pages, asked in windows of at most
        `MAX_WINDOW` (NaverPay refuses a longer search period)."""
        entries: list[dict[str, Any]] = []
        start = since
        while True:
            end = min(until, start + MAX_WINDOW)
            entries += await self._history_window(start, end)
            if end >= until:
                return entries
            start = end + timedelta(seconds=1)  # yyyyMMddHHmmss bounds are inclusive

    async def _history_window(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
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

