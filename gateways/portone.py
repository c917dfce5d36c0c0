"""`PaymentGateway` over PortOne's V2 REST API (https://api.portone.io): billing-key payments.

Source of every path, field and error type: PortOne's OpenAPI document
(https://developers.portone.io/schema/v2.openapi.json, vendored in github.com/portone-io/server-sdk
at `codegen/openapi.json`, commit f944c0a, 2026-01-22), and how PortOne's own Python server SDK
sends them (same repository, `python/src/portone_server_sdk/_generated/payment/client.py` and
`payment/billing_key/client.py`):

- Authentication: `Authorization: PortOne <API secret>` (security scheme `portOne`).
- Charge: `POST /payments/{paymentId}/billing-key` (`payWithBillingKey`), body
  `BillingKeyPaymentInput {storeId, billingKey, orderName, customer {id}, amount {total}, currency}`;
  200 `{payment: {pgTxId, paidAt}}`; errors ALREADY_PAID, BILLING_KEY_NOT_FOUND,
  BILLING_KEY_ALREADY_DELETED, PG_PROVIDER (with pgCode, pgMessage), INVALID_REQUEST, UNAUTHORIZED,
  FORBIDDEN, MAX_TRANSACTION_COUNT_REACHED, CHANNEL_NOT_FOUND, ...
- Cancel (refund): `POST /payments/{paymentId}/cancel` (`cancelPayment`), body `CancelPaymentBody
  {storeId, amount, reason, currentCancellableAmount}`; 200 `{cancellation: {status, id,
  totalAmount, ...}}`; errors CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN,
  CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT, PAYMENT_ALREADY_CANCELLED, PAYMENT_NOT_PAID,
  PAYMENT_NOT_FOUND, PG_PROVIDER, ...
- Lookup: `GET /payments/{paymentId}?storeId=` (`getPayment`): a Payment, or 404 PAYMENT_NOT_FOUND.
- Billing key: `GET /billing-keys/{billingKey}?storeId=` (`getBillingKeyInfo`): `BillingKeyInfo`
  (status ISSUED or DELETED, storeId, customer {id}, methods [{type, card {number}}]), or 404
  BILLING_KEY_NOT_FOUND.
- Listing: `GET /payments-by-cursor?requestBody=<JSON>` (`getAllPaymentsByCursor`, the body sent
  as the `requestBody` query parameter, as the SDK does) `{storeId, from, until, cursor, size}`
  (size at most 1000; from/until bound the payments' creation time); 200 `{items: [{payment, cursor}]}`.

Exactly once: PortOne documents no Idempotency-Key header; its idempotency is the paymentId we
choose. The paymentId is our order id, so a repeated charge (an in-call retry after a lost
answer, or a later run) is refused ALREADY_PAID once one went through: that answer is UNKNOWN
here and the order is looked up (`GET /payments/{paymentId}`) to settle it. Refunds carry
`currentCancellableAmount`, the balance read once before the first try: a retry after a cancel
that went through unheard is refused CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN instead of refunding
twice, and the payment's cancellations settle it.

Registration: PortOne's browser SDK issues the billing key on the client
(`PortOne.requestIssueBillingKey`); `issue_billing_key(auth_key=<that billingKey>, customer_key)`
checks it with `GET /billing-keys/{billingKey}`: ISSUED, of our store, for that customer.
"""
from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx

from domain.errors import SandboxOnly
from domain.ports import (
    BillingKey,
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    GatewayError,
    GatewayTransaction,
    RefundResult,
    RefundStatus,
)
from gateways.portone_objects import cancellable, decline_code_for, payment_result, provider_code, transaction
from gateways.toss import TossGateway
from gateways.toss_exchange import Exchange
from gateways.toss_objects import parse_time

#: Payments per page of the cursor listing (PortOne's maximum `size`).
LISTING_PAGE = 1000


class PortOneAuth(httpx.Auth):
    """`Authorization: PortOne <API secret>`."""

    def __init__(self, secret: str) -> None:
        self._header = f"PortOne {secret}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _error(exchange: Exchange) -> dict[str, Any]:
    return exchange.body() if exchange.response is not None else {}


def _message(exchange: Exchange) -> str:
    if exchange.response is None:
        return exchange.error
    body = exchange.body()
    return str(body.get("pgMessage") or body.get("message") or f"HTTP {exchange.response.status_code}")


def _failure(exchange: Exchange) -> GatewayError:
    if exchange.response is None:
        return GatewayError(DeclineCode.NETWORK_ERROR, None, exchange.error)
    body = _error(exchange)
    decline = decline_code_for(body.get("type"), exchange.response.status_code, body.get("pgCode"))
    return GatewayError(decline, provider_code(body), _message(exchange))


def _body_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _iso(when: datetime) -> str:
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class PortOneGateway(TossGateway):
    """The PORTONE provider. Shares the Toss client's HTTP exchange (its connection pool,
    in-call retries of 5xx/429/transport errors, logs without paths); speaks PortOne's paths,
    bodies and errors."""

    def __init__(
        self,
        base_url: str,
        api_secret: str,
        store_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_base_seconds: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(
            base_url, api_secret, provider="PORTONE", transport=transport,
            retry_base_seconds=retry_base_seconds, timeout=timeout, auth=PortOneAuth(api_secret),
        )
        self.store_id = store_id
        self.listing_page = LISTING_PAGE

    def transient(self, response: httpx.Response) -> bool:
        """5xx and 429, except PG_PROVIDER (HTTP 502): the card processor's definite verdict,
        which another try would only put to the card again."""
        if response.status_code == 502 and _body_type(response) == "PG_PROVIDER":
            return False
        return response.status_code >= 500 or response.status_code == 429

    async def issue_billing_key(self, auth_key: str, customer_key: str) -> BillingKey:
        """Verify a billing key PortOne's browser SDK issued: ISSUED, our store, this customer."""
        exchange = await self._exchange(
            "get_billing_key", "GET", f"/billing-keys/{quote(auth_key, safe='')}", params={"storeId": self.store_id}
        )
        if not exchange.succeeded:
            raise _failure(exchange)
        info = exchange.body()
        if info.get("status") != "ISSUED":
            raise GatewayError(DeclineCode.INVALID_BILLING_KEY, "BILLING_KEY_ALREADY_DELETED", "the billing key was deleted")
        if info.get("storeId") != self.store_id:
            raise GatewayError(DeclineCode.INVALID_BILLING_KEY, "FORBIDDEN", "the billing key belongs to another store")
        if (info.get("customer") or {}).get("id") != customer_key:
            raise GatewayError(
                DeclineCode.INVALID_BILLING_KEY, "INVALID_REQUEST", "the billing key was issued for another customer"
            )
        cards = [m.get("card") or {} for m in info.get("methods") or [] if isinstance(m, dict)]
        return BillingKey(billing_key=auth_key, card_masked=next((c.get("number") for c in cards if c.get("number")), None))

    async def charge(
        self, billing_key: str, customer_key: str, amount: int, order_id: str, order_name: str
    ) -> ChargeResult:
        body = {
            "storeId": self.store_id,
            "billingKey": billing_key,
            "orderName": order_name,
            "customer": {"id": customer_key},
            "amount": {"total": amount},
            "currency": "KRW",
        }
        exchange = await self._exchange("charge", "POST", f"/payments/{quote(order_id, safe='')}/billing-key", body)
        if exchange.succeeded:
            paid = exchange.body().get("payment") or {}
            return ChargeResult(
                ChargeStatus.APPROVED, order_id, payment_key=order_id, amount=amount,
                approved_at=parse_time(paid.get("paidAt")), gateway_status="DONE",
            )
        error = _error(exchange)
        message = _message(exchange)
        if error.get("type") == "ALREADY_PAID" or (exchange.ambiguous and not exchange.settled):
            # Paid under this paymentId already (our own earlier try), or maybe: look it up.
            return ChargeResult(
                ChargeStatus.UNKNOWN, order_id, decline_code=DeclineCode.NETWORK_ERROR,
                provider_code=provider_code(error), message=message,
            )
        failure = _failure(exchange)
        return ChargeResult(
            ChargeStatus.DECLINED, order_id, decline_code=failure.decline_code,
            provider_code=failure.provider_code, message=message,
        )

    async def refund(self, payment_key: str, amount: int, reason: str, idempotency_key: str) -> RefundResult:
        try:
            payment = await self._payment(payment_key)
        except GatewayError as error:
            return RefundResult(RefundStatus.REFUSED, provider_code=error.provider_code, message=error.message)
        if payment is None:
            return RefundResult(RefundStatus.REFUSED, provider_code="PAYMENT_NOT_FOUND", message="no such payment")
        body = {
            "storeId": self.store_id,
            "amount": amount,
            "reason": reason,
            # The balance before this refund, pinned for every retry: a repeat is refused.
            "currentCancellableAmount": cancellable(payment),
        }
        exchange = await self._exchange("refund", "POST", f"/payments/{quote(payment_key, safe='')}/cancel", body)
        error = _error(exchange)
        if exchange.succeeded:
            cancellation = exchange.body().get("cancellation") or {}
            status = cancellation.get("status")
            if status == "SUCCEEDED":
                return RefundResult(RefundStatus.DONE, refunded_amount=int(cancellation.get("totalAmount", amount)))
            if status == "FAILED":
                return RefundResult(RefundStatus.REFUSED, provider_code="FAILED", message="cancellation failed")
            return RefundResult(RefundStatus.UNKNOWN, message=f"cancellation {status}: look the payment up")
        if exchange.ambiguous and (not exchange.settled or error.get("type") == "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"):
            # An earlier try may have gone through unheard: the payment's cancellations tell.
            return RefundResult(RefundStatus.UNKNOWN, provider_code=provider_code(error), message=_message(exchange))
        return RefundResult(RefundStatus.REFUSED, provider_code=provider_code(error), message=_message(exchange))

    async def lookup_order(self, order_id: str) -> ChargeResult | None:
        payment = await self._payment(order_id)
        return None if payment is None else payment_result(payment, self._withheld)

    async def lookup_payment(self, payment_key: str) -> ChargeResult | None:
        """PortOne names a payment by our paymentId, so this is the order lookup."""
        return await self.lookup_order(payment_key)

    async def list_transactions(self, since: datetime, until: datetime) -> list[GatewayTransaction]:
        request: dict[str, Any] = {
            "storeId": self.store_id, "from": _iso(since), "until": _iso(until), "size": self.listing_page,
        }
        found: list[GatewayTransaction] = []
        while True:
            exchange = await self._exchange(
                "list_transactions", "GET", "/payments-by-cursor", params={"requestBody": json.dumps(request)}
            )
            if not exchange.settled:
                raise GatewayError(DeclineCode.NETWORK_ERROR, None, f"payment listing impossible: {_message(exchange)}")
            if not exchange.succeeded:
                raise _failure(exchange)
            items = exchange.body().get("items")
            if not isinstance(items, list):
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "payment listing has no items array")
            found.extend(t for t in (transaction(item) for item in items) if t is not None)
            if len(items) < self.listing_page:
                return found
            cursor = items[-1].get("cursor") if isinstance(items[-1], dict) else None
            if not cursor or cursor == request.get("cursor"):
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "payment listing gave no next cursor")
            request["cursor"] = cursor

    async def set_sandbox_outcome(self, billing_key: str, outcome: str) -> None:
        raise SandboxOnly("setSandboxOutcome needs the sandbox gateway, not PORTONE")

    async def _payment(self, payment_id: str) -> dict[str, Any] | None:
        """`GET /payments/{paymentId}`: the Payment, None for PAYMENT_NOT_FOUND; GatewayError otherwise."""
        exchange = await self._exchange(
            "lookup_order", "GET", f"/payments/{quote(payment_id, safe='')}", params={"storeId": self.store_id}
        )
        if not exchange.settled:
            raise GatewayError(DeclineCode.NETWORK_ERROR, None, f"payment lookup impossible: {_message(exchange)}")
        if exchange.succeeded:
            payment = exchange.body()
            if payment.get("id") != payment_id:
                raise GatewayError(DeclineCode.PROVIDER_ERROR, None, "payment lookup answered another payment")
            return payment
        if _error(exchange).get("type") == "PAYMENT_NOT_FOUND":
            return None
        raise _failure(exchange)
