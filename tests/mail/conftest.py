"""A real SMTP server process (tests/mail/smtp_server.py, aiosmtpd) and the service
configured to send to it, on both databases."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from schema.auth import mint_token
from tests.api import conftest as api_fixtures
from tests.api.conftest import JWT_SECRET, Api

# The service fixtures of tests/api (pytest_plugins is root-only).
api, api_factory, user = api_fixtures.api, api_fixtures.api_factory, api_fixtures.user

SERVER = Path(__file__).with_name("smtp_server.py")
FROM = "Subledger Billing <billing@subledger.test>"
NOTIFICATIONS = """query($u: ID) { notifications(userId: $u, first: 50) { id kind subject body createdAt sentAt
  deliveryStatus deliveryAttempts lastDeliveryError lastAttemptAt nextAttemptAt } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """One aiosmtpd process at a time on a fixed port, so it can go down and come back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.record = folder / "received.jsonl"
        self.refuse_file = folder / "refuse.txt"
        self.delay_file = folder / "delay.txt"
        self.process: subprocess.Popen[str] | None = None

    def start(self, *options: str, password: str | None = None) -> SmtpServer:
        env = {"PATH": "/usr/bin:/bin", **({"SMTP_TEST_PASSWORD": password} if password else {})}
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(self.port), "--record", str(self.record),
             "--refuse", str(self.refuse_file), "--delay", str(self.delay_file), *options],
            stdout=subprocess.PIPE, stderr=(self.folder / "smtp-server.log").open("a"), text=True, env=env,
        )
        line = self.process.stdout.readline()
        assert line.strip() == "READY", (line, (self.folder / "smtp-server.log").read_text())
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def refuse(self, *addresses: str) -> None:
        self.refuse_file.write_text("\n".join(addresses))

    def accept_all(self) -> None:
        self.refuse_file.unlink(missing_ok=True)

    def messages(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (and its key), made for this test: the CA file
    the service is told to trust is the certificate itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "subledger test smtp")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def smtp_settings(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    """Service settings that send to `server`: plain SMTP, fast retries (the tests wait in real time)."""
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_tls": "none",
        "smtp_from": FROM,
        "smtp_timeout": 5,
        "smtp_retry_base_seconds": 0.2,
    }
    values.update(overrides)
    return values


def with_address(api: Api, user: str) -> str:
    """Record an e-mail address for `user` as the product does: from the token's `email` claim."""
    address = f"{user}@mail.subledger.test"
    assert api.gql("{ me }", token=mint_token(JWT_SECRET, user, "user", email=address))["me"] == user
    return address


def notifications_of(api: Api, user: str) -> list[dict[str, Any]]:
    api.settle_read_models()
    return api.gql(NOTIFICATIONS, {"u": user}, user=user)["notifications"]


def wait_for_notification(api: Api, user: str, predicate: Any, timeout: float = 40, what: str = "") -> dict[str, Any]:
    """The user's only notification once `predicate` holds for it (senders work in the background)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        found = notifications_of(api, user)
        if len(found) == 1:
            last = found[0]
            if predicate(last):
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or 'the notification'}: last seen {last}")
