"""A provider that reads the whole request and then closes the connection, or resets it,
before sending a single byte of its answer: the request may have been processed, so the
outcome is unknown (to be settled by a lookup), never "it was not sent".

The sandbox's dropped-answer fault cuts the answer half-way through its body; an ASGI
server cannot end a connection before the status line (uvicorn answers 500 instead), so
this provider is a plain TCP server. The difference matters to any HTTP transport: one
that reported these cases as connection failures would have Toss record a decline for a
charge that may have gone through, and KakaoPay/NaverPay send a charge again."""
from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest

from domain.ports import ChargeStatus, DeclineCode, RefundStatus
from gateways.aiohttp_transport import AiohttpTransport
from gateways.careful_post import careful_post
from gateways.toss import RETRIES, TossGateway
from tests.raw_http import read_request


class HangUpServer:
    """Accepts connections, reads each request whole (headers and Content-Length body),
    counts it, then closes (`reset=False`) or resets (`reset=True`) without answering."""

    def __init__(self, reset: bool) -> None:
        self.reset = reset
        self.requests: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                line, _ = read_request(connection)
                if line is not None:
                    self.requests.append(line)
                if self.reset:  # RST instead of FIN
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(params=[False, True], ids=["closed", "reset"])
def provider(request: pytest.FixtureRequest) -> Iterator[HangUpServer]:
    server = HangUpServer(reset=request.param)
    yield server
    server.close()


async def test_a_toss_charge_whose_answer_never_started_is_unknown(provider: HangUpServer) -> None:
    gateway = TossGateway(provider.url, "test_sk_hang_up", retry_base_seconds=0.01)
    try:
        result = await gateway.charge("bk_1", "cust-1", 1000, "order-hang-up", "Plan")
    finally:
        await gateway.aclose()
    assert (result.status, result.decline_code) == (ChargeStatus.UNKNOWN, DeclineCode.NETWORK_ERROR)
    # Retried under the same Idempotency-Key (safe with Toss), every try reached the provider.
    assert provider.requests == [b"POST /v1/billing/bk_1 HTTP/1.1"] * (1 + RETRIES)


async def test_a_toss_refund_whose_answer_never_started_is_unknown(provider: HangUpServer) -> None:
    gateway = TossGateway(provider.url, "test_sk_hang_up", retry_base_seconds=0.01)
    try:
        result = await gateway.refund("pay_1", 500, "asked", "refund-hang-up")
    finally:
        await gateway.aclose()
    assert result.status is RefundStatus.UNKNOWN
    assert len(provider.requests) == 1 + RETRIES


async def test_a_post_without_an_honored_key_is_sent_once_and_may_have_arrived(provider: HangUpServer) -> None:
    async with httpx.AsyncClient(base_url=provider.url, transport=AiohttpTransport()) as client:  # as KakaoPay's
        sent = await careful_post(client, "KAKAO_PAY", "charge", "/v1/payment/subscription", retry_sent=False,
                                  retry_base_seconds=0.01, json={"amount": 1000})
    assert (sent.response, sent.sent) == (None, True)
    assert provider.requests == [b"POST /v1/payment/subscription HTTP/1.1"]  # never sent again
