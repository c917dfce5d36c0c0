"""`PaymentGateway` over KakaoPay's online payment API, regular (subscription) payments.

Source of every path and field: KakaoPay developer center, https://developers.kakaopay.com/docs/payment/online/
(host `open-api.kakaopay.com`, every call `POST` with `Authorization: SECRET_KEY ${SECRET_KEY}`
and `Content-Type: application/json`; test merchant code `TCSUBSCRIP` for regular payments):
- `/online/v1/payment/ready` ("결제 준비", regular payments' first payment): cid,
  partner_order_id, partner_user_id, item_name, quantity, total_amount, tax_free_amount,
  approval_url, cancel_url, fail_url → tid, next_redirect_pc_url, next_redirect_mobile_url,
  next_redirect_app_url, created_at. The payer approves on KakaoPay's page, which sends
  them to approval_url with `?pg_token=...`.
- `/online/v1/payment/approve` ("결제 승인"): cid, tid, partner_order_id, partner_user_id,
  pg_token → aid, tid, sid (the regular payments' key), amount, card_info, approved_at.
- `/online/v1/payment/subscription` ("정기 결제", 2nd payment on): cid, sid,
  partner_order_id, partner_user_id, item_name, quantity, total_amount, tax_free_amount
  → aid, tid, sid, amount {total…}, approved_at; no payer present.
- `/online/v1/payment/cancel` ("결제 취소", whole or part): cid, tid, cancel_amount,
  cancel_tax_free_amount, payload → status, approved_cancel_amount, canceled_amount,
  cancel_available_amount.
- `/online/v1/payment/order` ("주문 조회"): cid, tid → the order (`kakaopay_objects`).
Errors: `{error_code, error_message, extras}` (`kakaopay_objects`).

Exactly once: KakaoPay takes no idempotency key, and its order lookup is by tid only, which
it gives in the very answer that may be lost. So, unlike Toss, a request that may have
reached KakaoPay is never sent again by this client: only a connection that never opened
is retried; every other failure of a charge, an approval or a cancel is UNKNOWN, and the
domain settles it by lookup (refunds: by the payment's tid) or leaves it PENDING for
reconciliation and a person (a charge whose tid was never heard: docs/payments.md).
partner_order_id is the ledger's order id, so KakaoPay's own records name every charge.
KakaoPay has no transaction listing: reconciliation checks every ledger payment by lookup,
and `list_transactions` answers nothing (charges unknown to the ledger cannot be found).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from domain.errors import SandboxOnly
from domain.tracing import NO_TRACER, Tracer
from domain.ports import (
    BillingKey, ChargeResult, ChargeStatus, DeclineCode, GatewayError, GatewayTransaction, Redirect, RefundResult,
    RefundStatus,
)
from gateways.careful_post import Sent, careful_post
from gateways.default_transport import network_transport
from gateways.kakaopay_objects import (
    DUPLICATE_REQUEST, NO_SUCH_TID, approval_result, decline_code_for, error_of, order_result, provider_code,
)


#: What the registration's first payment shows the payer (KakaoPay's item_name).
REGISTRATION_ITEM = "정기결제 등록"


@dataclass(frozen=True)
class _Answer:
    response: httpx.Response | None
    sent: bool  # the request may have reached KakaoPay
    error: str

    def body(self) -> dict[str, Any]:
        return Sent(self.response, self.sent, self.error).json()

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.status_code == 200

    @property
    def definite(self) -> bool:
        """KakaoPay said no in its own words (a 4xx with an error_code): nothing was done."""
        return (self.response is not None and 400 <= self.response.status_code < 500
                and self.response.status_code != 429 and error_of(self.body())[0] is not None)

    def failure(self) -> GatewayError:
        if self.response is None:
            return GatewayError(DeclineCode.NETWORK_ERROR, None, self.error)
        code, method, message = error_of(self.body())
        return GatewayError(decline_code_for(code, self.response.status_code), provider_code(code, method),
                            message or f"HTTP {self.response.status_code}")


class KakaoPayGateway:
    provider = "KAKAO_PAY"
    #: Orders are found by KakaoPay's tid (`domain.ports.lookup_charge`).
    looks_up_by_payment_key = True

    def __init__(
        self, base_url: str, secret_key: str, cid: str, transport: httpx.AsyncBaseTransport | None = None,
        retry_base_seconds: float = 1.0, timeout: float = 10.0, registration_amount: int = 0,
    ) -> None:
        self.cid = cid
        self.registration_amount = registration_amount
        self._retry_base_seconds = retry_base_seconds
        self._client = httpx.AsyncClient(
            base_url=base_url, transport=transport or network_transport(), timeout=timeout,
            headers={"Authorization": f"SECRET_KEY {secret_key}"},
        )
        #: A span per call (`gateway.call`), named by operation, never by path or body.
        self.tracer: Tracer = NO_TRACER

    # -- registration (ready → the payer approves → approve) ---------------------------

    async def begin_registration(self, customer_key: str, approval_url: str, cancel_url: str, fail_url: str) -> Redirect:
        order_id = f"reg-{uuid.uuid4().hex}"
        answer = await self._post("ready", "/online/v1/payment/ready", {
            "cid": self.cid, "partner_order_id": order_id, "partner_user_id": customer_key,
            "item_name": REGISTRATION_ITEM, "quantity": 1, "total_amount": self.registration_amount,
            "tax_free_amount": 0, "approval_url": approval_url, "cancel_url": cancel_url, "fail_url": fail_url,
        }, retry_sent=True)  # nothing is charged by a ready: safe to repeat
        if not answer.ok:
            raise answer.failure()
        body = answer.body()
        return Redirect(f"{order_id}.{body['tid']}", body.get("next_redirect_pc_url"),
                        body.get("next_redirect_mobile_url"), body.get("next_redirect_app_url"))

    async def complete_registration(self, registration_id: str, approval_token: str, customer_key: str) -> BillingKey:
        order_id, _, tid = registration_id.partition(".")
        if not order_id.startswith("reg-") or not tid:
            raise GatewayError(DeclineCode.OTHER, None, "not a KakaoPay registration id")
        answer = await self._post("approve", "/online/v1/payment/approve", {
            "cid": self.cid, "tid": tid, "partner_order_id": order_id, "partner_user_id": customer_key,
            "pg_token": approval_token,
        })
        if not answer.ok:
            raise answer.failure()
        body = answer.body()
        if not body.get("sid"):
            raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "KakaoPay approved without an sid (not a regular-payment cid?)")
        card = body.get("card_info") if isinstance(body.get("card_info"), dict) else {}
        label = card.get("kakaopay_issuer_corp") or card.get("issuer_corp")
        return BillingKey(billing_key=body["sid"], card_masked=f"KakaoPay {label}" if label else "KakaoPay")

    async def issue_billing_key(self, auth_key: str, customer_key: str) -> BillingKey:
        raise GatewayError(DeclineCode.OTHER, None,
                           "KakaoPay needs beginPaymentMethodRegistration, then its registrationId with the pg_token")

    # -- charges, refunds, lookups ------------------------------------------------------

    async def charge(self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str) -> ChargeResult:
        answer = await self._post("charge", "/online/v1/payment/subscription", {
            "cid": self.cid, "sid": billing_key, "partner_order_id": order_id, "partner_user_id": customer_key,
            "item_name": order_name[:100], "quantity": 1, "total_amount": amount, "tax_free_amount": 0,
        })
        if answer.ok:
            return approval_result(order_id, answer.body())
        code, method, message = error_of(answer.body())
        if answer.definite and code != DUPLICATE_REQUEST:
            assert answer.response is not None
            return ChargeResult(ChargeStatus.DECLINED, order_id, decline_code=decline_code_for(code, answer.response.status_code),
                                provider_code=provider_code(code, method), message=message)
        if not answer.sent:
            return ChargeResult(ChargeStatus.DECLINED, order_id, decline_code=DeclineCode.NETWORK_ERROR, message=answer.error)
        # Sent, and no definite no: KakaoPay may have charged (a 5xx, a cut answer, a duplicate).
        return ChargeResult(ChargeStatus.UNKNOWN, order_id, decline_code=DeclineCode.NETWORK_ERROR,
                            provider_code=provider_code(code, method), message=message or answer.error)

    async def refund(self, payment_key: str, amount: int, reason: str, idempotency_key: str) -> RefundResult:
        answer = await self._post("refund", "/online/v1/payment/cancel", {
            "cid": self.cid, "tid": payment_key, "cancel_amount": amount, "cancel_tax_free_amount": 0,
            "payload": idempotency_key,
        })
        if answer.ok:
            approved = answer.body().get("approved_cancel_amount") or {}
            return RefundResult(RefundStatus.DONE, refunded_amount=int(approved.get("total", amount)))
        code, method, message = error_of(answer.body())
        if answer.definite or not answer.sent:
            return RefundResult(RefundStatus.REFUSED, provider_code=provider_code(code, method), message=message or answer.error)
        return RefundResult(RefundStatus.UNKNOWN, provider_code=provider_code(code, method),
                            message=f"refund outcome unknown, look the order up: {message or answer.error}")

    async def lookup_order(self, order_id: str, payment_key: str | None = None) -> ChargeResult | None:
        if not payment_key:
            raise GatewayError(DeclineCode.NETWORK_ERROR, None,
                               "KakaoPay looks orders up by tid only, and this order's tid was never heard")
        found = await self.lookup_payment(payment_key)
        if found is not None and found.order_id != order_id:
            raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "KakaoPay answered another order for this tid")
        return found

    async def lookup_payment(self, payment_key: str) -> ChargeResult | None:
        answer = await self._post("lookup", "/online/v1/payment/order", {"cid": self.cid, "tid": payment_key},
                                  retry_sent=True)
        if answer.ok:
            body = answer.body()
            return order_result(str(body.get("partner_order_id")), body)
        code, _, message = error_of(answer.body())
        if answer.definite and code == NO_SUCH_TID:
            return None
        if answer.definite:
            raise answer.failure()
        raise GatewayError(DeclineCode.NETWORK_ERROR, None, f"order lookup impossible: {message or answer.error}")

    async def list_transactions(self, since: datetime, until: datetime) -> list[GatewayTransaction]:
        return []  # KakaoPay has no transaction listing (module docstring)

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        raise SandboxOnly("setSandboxOutcome needs the sandbox gateway, not KAKAO_PAY")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, operation: str, path: str, body: dict[str, Any], retry_sent: bool = False) -> _Answer:
        """POST once, retrying what cannot have reached KakaoPay; with `retry_sent` (reads, and
        a ready, which charges nothing) also lost answers and 5xx/429. Logs and spans name the
        operation, never the body (it holds the sid)."""
        attributes = {"subledger.gateway.provider": self.provider, "subledger.gateway.operation": operation}
        with self.tracer.span("gateway.call", attributes) as span:
            sent = await careful_post(self._client, self.provider, operation, path, retry_sent=retry_sent,
                                      retry_base_seconds=self._retry_base_seconds, json=body)
            answer = _Answer(sent.response, sent.sent, sent.error)
            span.set_attribute("subledger.gateway.settled", answer.ok or answer.definite)
            if answer.response is not None:
                span.set_attribute("http.response.status_code", answer.response.status_code)
            return answer
