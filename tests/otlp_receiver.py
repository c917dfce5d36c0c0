"""A real OTLP/HTTP trace receiver for the tracing tests, run as its own process:

    python -m tests.otlp_receiver     (prints "listening <port>" and serves until killed)

`POST /v1/traces` takes an ExportTraceServiceRequest in protobuf (gzip or not, as the SDK's
exporter sends it), decodes it with opentelemetry-proto and keeps every span, flattened:
`GET /spans` answers them as JSON, `GET /raw` every body received (decompressed) as it came,
for a search for secrets in the exported bytes; `DELETE /spans` forgets everything.
`running_receiver()` starts it for a test; `Received` reads it.
"""
from __future__ import annotations

import base64
import contextlib
import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from gateways.tls import client_ssl_context

_lock = threading.Lock()
_spans: list[dict[str, Any]] = []
_raw: list[bytes] = []


def _value(any_value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in any_value:
            return any_value[key]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    return any_value


def flatten(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    spans = []
    for resource_spans in MessageToDict(request).get("resourceSpans", []):
        resource = {a["key"]: _value(a["value"]) for a in resource_spans.get("resource", {}).get("attributes", [])}
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {}).get("name", "")
            for span in scope_spans.get("spans", []):
                spans.append({
                    "name": span["name"],
                    "scope": scope,
                    "service": resource.get("service.name"),
                    # MessageToDict writes bytes as base64; hex as trace ids are usually shown.
                    "trace_id": base64.b64decode(span["traceId"]).hex(),
                    "span_id": base64.b64decode(span["spanId"]).hex(),
                    "parent_id": base64.b64decode(span.get("parentSpanId", "")).hex(),
                    "kind": span.get("kind"),
                    "status": span.get("status", {}).get("code"),
                    "attributes": {a["key"]: _value(a["value"]) for a in span.get("attributes", [])},
                })
    return spans


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            return self._answer(404, b"", "text/plain")
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with _lock:
            _raw.append(body)
            _spans.extend(flatten(request))
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        with _lock:
            if self.path == "/spans":
                return self._answer(200, json.dumps(_spans).encode(), "application/json")
            if self.path == "/raw":
                return self._answer(200, b"".join(_raw), "application/octet-stream")
        self._answer(404, b"", "text/plain")

    def do_DELETE(self) -> None:
        with _lock:
            _spans.clear()
            _raw.clear()
        self._answer(204, b"", "text/plain")


@dataclass(frozen=True)
class Received:
    """What the receiver at `url` holds."""

    url: str

    def spans(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/spans", verify=client_ssl_context()).json()

    def raw(self) -> bytes:
        return httpx.get(f"{self.url}/raw", verify=client_ssl_context()).content

    def clear(self) -> None:
        httpx.delete(f"{self.url}/spans").raise_for_status()


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Names of the span's ancestors within `by_id`, nearest first."""
    names = []
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


@contextlib.contextmanager
def running_receiver() -> Iterator[Received]:
    """The receiver as its own process, stopped afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_receiver"], cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("listening "), line
        yield Received(f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
