"""A real SMTP server for the e-mail tests, run as its own process (aiosmtpd):

    python tests/mail/smtp_server.py --port P --record FILE [--refuse FILE] [--delay FILE]
        [--cert PEM --key PEM (--starttls | --implicit-tls)] [--username NAME]

Every accepted message is appended to --record as one JSON line (envelope sender,
recipients, the message text, whether the session was encrypted, who logged in).
While the --refuse file exists, RCPT of any address listed in it answers 550.
While the --delay file exists, the final reply to DATA waits that many seconds.
With --username, AUTH is required (after STARTTLS when that is on) and the password
is read from the SMTP_TEST_PASSWORD environment variable, never from the command line.
"READY" on stdout says the server accepts connections.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, record: Path, refuse: Path | None, delay: Path | None) -> None:
        self.record = record
        self.refuse = refuse
        self.delay = delay

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.refuse is not None and self.refuse.exists() and address in self.refuse.read_text().split():
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay is not None and self.delay.exists():
            await asyncio.sleep(float(self.delay.read_text() or "0"))
        entry = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "encrypted": server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data.decode() if session.authenticated else None,
        }
        with self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
        return "250 2.0.0 Ok: queued"


def authenticator(username: str, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            username.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    return check


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--refuse", type=Path)
    parser.add_argument("--delay", type=Path)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--starttls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--username")
    args = parser.parse_args()

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    options: dict[str, Any] = {}
    if args.starttls:
        options.update(tls_context=context, require_starttls=True)
    if args.username:
        # aiosmtpd does not see an implicit-TLS connection as encrypted: it is, so AUTH may go on it.
        options.update(authenticator=authenticator(args.username, os.environ["SMTP_TEST_PASSWORD"]), auth_required=True,
                       auth_require_tls=args.starttls)
    controller = Controller(
        Recorder(args.record, args.refuse, args.delay), hostname="127.0.0.1", port=args.port,
        ssl_context=context if args.implicit_tls else None, server_hostname="localhost", **options,
    )
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
