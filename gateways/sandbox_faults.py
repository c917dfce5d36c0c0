"""The Toss look-alike's faults (`SandboxEngine.faults`, set through `POST /sandbox/faults`)
applied to another provider's look-alike (KakaoPay, NaverPay): refusals, lookups down,
latency and the concurrency cap, error bursts, dropped answers of charges and refunds."""
from __future__ import annotations

from collections.abc import Callable

from gateways.sandbox_engine import Reply, SandboxEngine


async def with_faults(engine: SandboxEngine, scope: str, operation: Callable[[], Reply],
                      error: Callable[[int, bool], Reply]) -> Reply:
    """`scope`: "pay" (a charge or an approval: its answer may be dropped), "cancel" (a refund:
    refund latency, dropped refund answers), "lookup" (down with `lookups_down`), or any other.
    `error(status, down)` is the provider's own error answer of that HTTP status, not processed
    (`down`: the whole gateway refuses; else an injected error burst)."""
    faults = engine.faults
    if faults.refuse or (scope == "lookup" and faults.lookups_down):
        return error(503, True)
    async with engine._admission(faults.refund_latency_ms if scope == "cancel" else 0):
        if faults.error_burst_count > 0:
            faults.error_burst_count -= 1
            return error(faults.error_burst_status, False)
        reply = operation()
    if scope == "cancel" and faults.drop_refund_responses > 0 and reply.processed:
        faults.drop_refund_responses -= 1
        return Reply(reply.status, reply.body, dropped=True)
    if scope == "pay" and faults.drop_responses > 0 and reply.processed:
        faults.drop_responses -= 1
        return Reply(reply.status, reply.body, dropped=True)
    return reply
