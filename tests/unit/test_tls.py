"""One verifying TLS context per process for the outgoing HTTP clients (gateways/tls.py)."""
from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import certifi
import httpx
import pytest

from gateways.aiohttp_transport import AiohttpTransport
from gateways.tls import client_ssl_context


@pytest.fixture
def no_cert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def test_the_context_is_made_once_and_verifies_like_httpx_own(no_cert_env: None) -> None:
    context = client_ssl_context()
    assert client_ssl_context() is context
    own = httpx.create_ssl_context()
    assert context.verify_mode == own.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname and own.check_hostname
    assert len(context.get_ca_certs()) == len(own.get_ca_certs()) > 100  # certifi's roots


def test_roots_named_by_ssl_cert_file_get_a_context_of_their_own(
    no_cert_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = client_ssl_context()
    bundle = tmp_path / "roots.pem"
    # The first root of certifi's bundle alone: a context for it holds one root, not certifi's all.
    pem = Path(certifi.where()).read_text()
    first = pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    bundle.write_text(first + "\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    own = client_ssl_context()
    assert own is not default and client_ssl_context() is own
    assert len(own.get_ca_certs()) == 1
    monkeypatch.delenv("SSL_CERT_FILE")
    assert client_ssl_context() is default


def test_the_gateways_transport_verifies_with_the_shared_context(no_cert_env: None) -> None:
    assert AiohttpTransport()._ssl is client_ssl_context()


def test_a_process_with_only_the_in_process_sandbox_never_imports_aiohttp() -> None:
    """`serve` on the embedded default builds its gateways without aiohttp (gateways/default_transport.py)."""
    code = (
        "import sys\n"
        "from gateways.toss import in_process_sandbox\n"
        "import subledger.app\n"
        "gateway = in_process_sandbox(None)\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
        "from gateways.toss import TossGateway\n"
        "TossGateway('https://api.tosspayments.com', 'test_sk_x')\n"
        "assert 'aiohttp' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
