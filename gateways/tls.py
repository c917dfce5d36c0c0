"""The TLS context every outgoing HTTP client of a process verifies with.

httpx builds a new context for each client it makes (`httpx.create_ssl_context()`): it
loads certifi's whole root bundle, or the one SSL_CERT_FILE / SSL_CERT_DIR names, about
30 ms of CPU each time. A process makes a client per gateway, per webhook sender and per
`bench` or test client, so the bundle was loaded again and again for the same answer.
`client_ssl_context` makes that context once per process and hands out the same one. It is
made by httpx itself, from the environment as it is when asked: set SSL_CERT_FILE or
SSL_CERT_DIR to something else later and the next call makes (and keeps) a context for
those roots. The context is only read by the clients (verification on, httpx's defaults);
nobody may load a client certificate or change its settings in place.
"""
from __future__ import annotations

import os
import ssl
import threading

import httpx

_lock = threading.Lock()
_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def client_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context for the roots the environment names now (made once)."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _contexts.get(key)
    if context is None:
        with _lock:
            context = _contexts.get(key)
            if context is None:
                context = _contexts[key] = httpx.create_ssl_context()
    return context
