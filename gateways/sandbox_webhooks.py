"""The sandbox's payment notifications: Toss' webhook, sent to a configured URL.

What Toss sends, as its docs show it (https://docs.tosspayments.com/reference/using-api/webhook-events,
"웹훅 이벤트"; https://docs.tosspayments.com/guides/webhook, "웹훅 연동하기"): an HTTP POST
of JSON `{eventType, createdAt, data}`. `PAYMENT_STATUS_CHANGED` carries the whole Payment
object as `data` and is sent when a payment becomes DONE, ABORTED, EXPIRED, CANCELED or
PARTIAL_CANCELED (a billing charge approved at once sends none). `createdAt` is Korean local
time without an offset (`yyyy-MM-dd'T'HH:mm:ss.SSSSSS`). Headers:
`tosspayments-webhook-transmission-id`, `-transmission-time` and `-transmission-retried-count`;
payment notifications carry no signature (`tosspayments-webhook-signature` is only on
payout.changed and seller.changed). Toss counts only an HTTP 200 as delivered and retries
up to 7 times (1, 4, 16 … 4096 minutes).

The sandbox sends each notice once, in a background thread, to the URL configured
(`SandboxEngine(webhook_url=…)`, `subledger sandbox-gateway --webhook-url`, or
`POST /sandbox/webhooks`); it does not retry by itself. For tests it can hold notices
instead of sending them, deliver any notice again and in any order
(`POST /sandbox/webhooks/{id}/deliver`), and send a body of the test's own making
(`POST /sandbox/webhooks/send`: a forged notification, from where Toss' would come).
"""
from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateways.tls import client_ssl_context

PAYMENT_STATUS_CHANGED = "PAYMENT_STATUS_CHANGED"
#: Seconds the receiver has to answer (Toss gives 10).
TIMEOUT_SECONDS = 10.0


@dataclass
class Notice:
    id: int
    body: dict[str, Any]
    #: HTTP status of each delivery so far, in order (0: no answer at all).
    deliveries: list[int] = field(default_factory=list)
    forged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "body": self.body, "deliveries": list(self.deliveries), "forged": self.forged}


class WebhookSender:
    def __init__(self, url: str | None, clock: Callable[[], datetime]) -> None:
        self.url = url
        self.hold = False
        self._clock = clock
        self._lock = threading.Lock()
        self.notices: list[Notice] = []

    def configure(self, url: str | None, hold: bool) -> None:
        self.url, self.hold = url, hold

    def status_changed(self, payment: dict[str, Any]) -> Notice:
        """A payment changed status: record its notice and send it unless held."""
        created = self._clock().replace(tzinfo=None).isoformat(timespec="microseconds")
        notice = self._record({"eventType": PAYMENT_STATUS_CHANGED, "createdAt": created, "data": payment})
        if self.url and not self.hold:
            threading.Thread(target=self._deliver, args=(notice,), daemon=True, name="sandbox-webhook").start()
        return notice

    def notice(self, notice_id: int) -> Notice | None:
        return next((n for n in self.notices if n.id == notice_id), None)

    async def deliver(self, notice_id: int) -> int | None:
        """Send a recorded notice (again) now; its HTTP status, None when there is no such notice."""
        notice = self.notice(notice_id)
        if notice is None:
            return None
        return await asyncio.to_thread(self._deliver, notice)

    async def send(self, body: dict[str, Any]) -> tuple[Notice, int]:
        """Send any body, as Toss would send a notice (a forged one, for tests)."""
        notice = self._record(body, forged=True)
        return notice, await asyncio.to_thread(self._deliver, notice)

    def _record(self, body: dict[str, Any], forged: bool = False) -> Notice:
        with self._lock:
            notice = Notice(len(self.notices) + 1, body, forged=forged)
            self.notices.append(notice)
        return notice

    def _deliver(self, notice: Notice) -> int:
        if not self.url:
            return 0
        headers = {
            "tosspayments-webhook-transmission-id": f"whtrans_{secrets.token_hex(12)}",
            "tosspayments-webhook-transmission-time": self._clock().isoformat(timespec="seconds"),
            "tosspayments-webhook-transmission-retried-count": str(len(notice.deliveries)),
        }
        try:
            status = httpx.post(self.url, json=notice.body, headers=headers, timeout=TIMEOUT_SECONDS,
                                verify=client_ssl_context()).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            notice.deliveries.append(status)
        return status


def webhook_routes(sender: Callable[[], WebhookSender]) -> list[Route]:
    """The sandbox's controls of its notifications (`sender()`: the engine's current sender):

    - `GET /sandbox/webhooks`: the URL, whether notices are held, every notice with its deliveries;
    - `POST /sandbox/webhooks {url, hold}`: where to send, and whether to hold new notices;
    - `POST /sandbox/webhooks/{id}/deliver`: send notice `id` (again) now → `{status}`;
    - `POST /sandbox/webhooks/send {body}`: send `body` as a notification → `{id, status}`."""

    async def listing(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
            url = body.get("url") if isinstance(body, dict) else None
            hold = body.get("hold", False) if isinstance(body, dict) else None
            if not isinstance(body, dict) or not (url is None or isinstance(url, str)) or not isinstance(hold, bool):
                return JSONResponse({"code": "INVALID_REQUEST", "message": "{url: string|null, hold: bool}"}, 400)
            sender().configure(url or None, hold)
        current = sender()
        return JSONResponse({"url": current.url, "hold": current.hold, "notices": [n.to_json() for n in current.notices]})

    async def deliver(request: Request) -> Response:
        notice_id = request.path_params["notice_id"]
        status = await sender().deliver(notice_id)
        if status is None:
            return JSONResponse({"code": "NOT_FOUND", "message": f"no notice {notice_id}"}, 404)
        return JSONResponse({"id": notice_id, "status": status})

    async def send(request: Request) -> Response:
        try:
            body = (await request.json()).get("body")
        except (ValueError, AttributeError):
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"code": "INVALID_REQUEST", "message": "{body: object}"}, 400)
        notice, status = await sender().send(body)
        return JSONResponse({"id": notice.id, "status": status})

    return [
        Route("/sandbox/webhooks", listing, methods=["GET", "POST"]),
        Route("/sandbox/webhooks/send", send, methods=["POST"]),
        Route("/sandbox/webhooks/{notice_id:int}/deliver", deliver, methods=["POST"]),
    ]
