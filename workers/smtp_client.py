"""Handing one notification to an SMTP server with aiosmtplib (docs/email.md).

`SmtpConnection.send` speaks MAIL, RCPT and DATA itself instead of calling
aiosmtplib's `send_message`, so the sender can record the moment the message
text starts to travel (`before_data`): before it, any failure means the server
does not have the message and it may be tried again; after it, a lost
connection leaves the server's answer unknown (`HandedOver`).

The connection (STARTTLS or implicit TLS, and AUTH when a username is set) is
opened lazily and reused for every message of a pass; any error closes it, and
the next message opens a new one.
"""
from __future__ import annotations

import asyncio
import enum
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib


class TlsMode(enum.Enum):
    """SUBLEDGER_SMTP_TLS: STARTTLS on a plain connection (port 587), implicit TLS (465), or none (25)."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.TLS: 465, TlsMode.NONE: 25}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: TlsMode
    from_address: str
    timeout: float
    username: str | None = None
    #: Kept out of repr: settings and configs are never printed with their secrets.
    password: str | None = field(default=None, repr=False)
    #: A CA bundle to verify the server's certificate with (a private CA, a self-signed server).
    ca_file: str | None = None
    max_attempts: int = 10
    retry_base: timedelta = timedelta(seconds=60)
    retry_cap: timedelta = timedelta(hours=1)

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.from_address)[1]

    @property
    def lease(self) -> timedelta:
        """How long one claimed message may take: a dozen SMTP exchanges, each bounded by the timeout."""
        return timedelta(seconds=12 * self.timeout)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after `attempts` failed attempts: base, 2 x base, 4 x base ..., at most retry_cap."""
        return min(self.retry_cap, self.retry_base * (2 ** min(max(attempts - 1, 0), 30)))


class NotHandedOver(Exception):
    """The server does not have the message (refused it, or was not reached): it may be tried again."""


class ServerUnusable(NotHandedOver):
    """No connection could be made (down, TLS or AUTH refused): no other message would get through either."""


class HandedOver(Exception):
    """The message text was sent but the server's answer was lost: it may have been accepted."""


def describe(error: BaseException) -> str:
    """An error in one line, as the server or the library put it (no secret is in either)."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def build_message(config: SmtpConfig, notification: dict[str, Any], recipient: str, now: datetime) -> EmailMessage:
    """Plain text. The Message-ID is the notification's id, so a receiving system that
    deduplicates by it shows a message once whatever happened on the way."""
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = recipient
    message["Subject"] = notification["subject"]
    message["Date"] = format_datetime(now)
    domain = config.envelope_from.rpartition("@")[2] or "subledger.invalid"
    message["Message-ID"] = f"<{notification['id']}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a billing notice
    message["X-Subledger-Kind"] = notification["kind"]
    message.set_content(notification["body"])
    return message


class SmtpConnection:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            timeout=c.timeout,
            use_tls=c.tls is TlsMode.TLS,
            start_tls=True if c.tls is TlsMode.STARTTLS else False,
            cert_bundle=c.ca_file,
            validate_certs=True,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = self._new_client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as error:
            raise ServerUnusable(describe(error)) from None
        self._client = client
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def send(self, message: EmailMessage, recipient: str, before_data: Callable[[], Awaitable[None]]) -> str:
        """Send `message` to `recipient`; the server's reply when it accepted it.
        Raises NotHandedOver (ServerUnusable when no connection could be made) or HandedOver."""
        client = await self._connected()
        try:
            encoding = "ascii"
            if not recipient.isascii():
                if not client.supports_extension("smtputf8"):
                    raise NotHandedOver("the server does not accept non-ASCII addresses (no SMTPUTF8)")
                encoding = "utf-8"
            await client.mail(self.config.envelope_from, options=["SMTPUTF8"] if encoding == "utf-8" else None,
                              encoding=encoding)
            await client.rcpt(recipient, encoding=encoding)
        except aiosmtplib.SMTPResponseException as refused:
            await self._reset(client)
            raise NotHandedOver(describe(refused)) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            self._drop()
            raise NotHandedOver(describe(error)) from None
        except BaseException:
            self._drop()
            raise
        await before_data()
        try:
            reply = await client.data(message.as_bytes(policy=SMTP_POLICY))
        except aiosmtplib.SMTPResponseException as refused:
            # A definite answer: the server did not take the message.
            await self._reset(client)
            raise NotHandedOver(describe(refused)) from None
        except asyncio.CancelledError:
            self._drop()  # stopped mid-DATA: the claim goes stale and is told UNCONFIRMED
            raise
        except Exception as error:
            self._drop()
            raise HandedOver(describe(error)) from None
        return f"{reply.code} {reply.message}"

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._drop()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
