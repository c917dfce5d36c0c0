"""Spans, as the ledger and the adapters see them: a port, so the domain never imports a
tracing library. The composition root hands in a real tracer when an OTLP endpoint is
configured (`subledger/tracing.py`); otherwise every span is `NO_SPAN` and costs a call.

Attributes are names and counts only: never a secret, billing key, auth key or personal data.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

AttributeValue = str | int | float | bool


class Span(Protocol):
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class Tracer(Protocol):
    def span(self, name: str, attributes: dict[str, AttributeValue]) -> AbstractContextManager[Span]:
        """A span named `name`, child of the current one, ended when the block is left."""
        ...


class _NoSpan:
    """The span of `NO_TRACER`: records nothing, and is its own context manager."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


class _NoTracer:
    __slots__ = ()

    def span(self, name: str, attributes: dict[str, AttributeValue]) -> _NoSpan:
        return NO_SPAN


#: The tracer of a process without an OTLP endpoint.
NO_TRACER: Tracer = _NoTracer()


def command_name(body: object) -> str:
    """`WalletCommands.spend` for the body closure a command hands to `Ledger.run`."""
    qualname = getattr(body, "__qualname__", None) or type(body).__name__
    return qualname.split(".<locals>", 1)[0]
