"""One POST to a provider that takes no idempotency key it is known to honor (KakaoPay,
NaverPay): retried only when it cannot have reached the provider, or, for requests that are
safe to repeat (reads, reservations that charge nothing), also after a lost answer or a
5xx/429. Logs name the provider and operation, never the body (it holds billing keys)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, retry_if_result, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

RETRIES = 3
#: Failures of a request that never left this machine: always safe to send again.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Sent:
    response: httpx.Response | None
    sent: bool  # the request may have reached the provider
    error: str

    def json(self) -> dict[str, Any]:
        if self.response is None:
            return {}
        try:
            body = self.response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


async def careful_post(
    client: httpx.AsyncClient, provider: str, operation: str, path: str, *, retry_sent: bool,
    retry_base_seconds: float, **request: Any,
) -> Sent:
    """POST `path` with `request` (json=, data=, headers=…) under the rule above."""
    sent, last_error = False, ""

    async def attempt() -> httpx.Response:
        nonlocal sent, last_error
        try:
            return await client.post(path, **request)
        except httpx.TransportError as exc:
            sent = sent or not isinstance(exc, NEVER_SENT)
            last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("gateway_error provider=%s operation=%s error=%s", provider, operation, type(exc).__name__)
            raise

    def retryable(response: httpx.Response) -> bool:
        return retry_sent and (response.status_code >= 500 or response.status_code == 429)

    def transport_retryable(exc: BaseException) -> bool:
        return isinstance(exc, NEVER_SENT) or (retry_sent and isinstance(exc, httpx.TransportError))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(1 + RETRIES),
        wait=wait_exponential(multiplier=retry_base_seconds, exp_base=2),
        retry=retry_if_exception(transport_retryable) | retry_if_result(retryable),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    try:
        response = await retrying(attempt)
    except httpx.TransportError:
        return Sent(None, sent, last_error)
    return Sent(response, True, last_error)
