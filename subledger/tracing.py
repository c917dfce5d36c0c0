"""OpenTelemetry tracing, only when SUBLEDGER_OTLP_ENDPOINT is set (docs/operations-monitoring.md#tracing).

`start_tracing` builds this process's own tracer provider (never the global one: tests build
several apps in one process) exporting over OTLP/HTTP through the SDK's BatchSpanProcessor,
and `OtelTracer`, the `domain.tracing.Tracer` the ledger, the gateways and the jobs are handed.
`Tracing.shutdown` flushes what is queued; the SDK also does at interpreter exit.

Unset, nothing here is imported or built: the ledger keeps `NO_TRACER`, the HTTP app has no
tracing middleware and the schema no tracing extension.

A span that ends by an exception says which (`error.type`, status ERROR) but not its message,
which may repeat an input (an e-mail address, a coupon code).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from domain.tracing import AttributeValue

#: The instrumentation scope of subledger's own spans (the GraphQL spans are Strawberry's).
SCOPE = "subledger"


class OtelTracer:
    """`domain.tracing.Tracer` over an OpenTelemetry tracer: a child of the current span."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def span(self, name: str, attributes: dict[str, AttributeValue]) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except BaseException as error:
                mark_failed(span, error)
                raise


def mark_failed(span: Span, error: BaseException) -> None:
    """The error's type (and a refusal's contract code) on the span, never its message."""
    span.set_attribute("error.type", type(error).__name__)
    code = getattr(error, "code", None)
    if isinstance(code, str):
        span.set_attribute("subledger.error_code", code)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@dataclass
class Tracing:
    provider: TracerProvider
    tracer: OtelTracer

    def shutdown(self) -> None:
        """Export what is queued and stop (the SDK waits up to its export timeout)."""
        self.provider.shutdown()


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces path under the collector's base URL."""
    return endpoint.rstrip("/") + "/v1/traces"


def start_tracing(endpoint: str | None, service_name: str) -> Tracing | None:
    """This process's tracing, or None when no endpoint is configured."""
    if not endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    return Tracing(provider, OtelTracer(provider.get_tracer(SCOPE)))
