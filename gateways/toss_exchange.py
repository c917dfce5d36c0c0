"""One call to Toss (or a provider speaking like it, e.g. PortOne) as the gateway sees it
after its retries: the last answer, whether some try may have been processed unheard
(`ambiguous`), and what the answer means (settled, succeeded, the decline it maps to)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from domain.ports import DeclineCode, GatewayError
from gateways.toss_objects import decline_code_for


def response_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def in_flight_elsewhere(response: httpx.Response) -> bool:
    # Toss answers 409 while an earlier request with the same Idempotency-Key is still
    # being processed: that one may yet charge, so this is neither success nor decline.
    return response.status_code == 409 and response_body(response).get("code") == "IDEMPOTENT_REQUEST_PROCESSING"


def transient_answer(response: httpx.Response) -> bool:
    return response.status_code >= 500 or response.status_code == 429 or in_flight_elsewhere(response)


@dataclass(frozen=True)
class Exchange:
    """What the retried calls to one endpoint came to."""

    response: httpx.Response | None  # the last HTTP answer, if the last try got one
    ambiguous: bool  # some try may have been processed without us hearing the outcome
    error: str  # the last transport error, for messages
    #: Which answers are worth another try (`TossGateway.transient`).
    transient: Callable[[httpx.Response], bool] = transient_answer

    @property
    def settled(self) -> bool:
        """The provider gave a definite answer (success or a decline)."""
        return self.response is not None and not self.transient(self.response)

    @property
    def succeeded(self) -> bool:
        return self.settled and self.response is not None and self.response.status_code == 200

    def body(self) -> dict[str, Any]:
        return response_body(self.response) if self.response is not None else {}

    def error_of(self) -> tuple[str | None, str]:
        if self.response is None:
            return None, self.error
        body = self.body()
        return body.get("code"), body.get("message") or f"HTTP {self.response.status_code}"

    def failure(self) -> GatewayError:
        code, message = self.error_of()
        if self.response is None:
            return GatewayError(DeclineCode.NETWORK_ERROR, None, message)
        return GatewayError(decline_code_for(code, self.response.status_code), code, message)
