"""Running one command per item with bounded concurrency, streaming, with progress.

Due work can be large (100,000 renewals on the first of a month): items are
pulled from an iterator as slots free up, never all loaded or all started at
once, and a rich progress line goes to the log for long runs.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import structlog
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

log = structlog.get_logger("subledger.jobs")

T = TypeVar("T")

#: Runs with more items than this show a progress line.
PROGRESS_THRESHOLD = 1000


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> Any:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def for_each(
    items: Iterable[T] | AsyncIterable[T],
    action: Callable[[T], Awaitable[bool]],
    *,
    concurrency: int,
    label: str,
    total: int | None = None,
) -> dict[str, int]:
    """Run `action` on every item, at most `concurrency` at once. `action` answers True
    when it did something; an exception counts as failed (logged) and never stops the run."""
    counts = {"processed": 0, "succeeded": 0, "failed": 0}
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    show = total is not None and total > PROGRESS_THRESHOLD
    progress = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True, disable=not show
    )
    task_id = progress.add_task(label, total=total)
    started = time.monotonic()

    async def run_one(item: T) -> None:
        try:
            if await action(item):
                counts["succeeded"] += 1
        except Exception:
            counts["failed"] += 1
            log.exception("item_failed", job=label, item=repr(item)[:200])
        finally:
            counts["processed"] += 1
            progress.advance(task_id)
            slots.release()

    with progress:
        async for item in _aiter(items):
            await slots.acquire()
            task = asyncio.create_task(run_one(item))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    if show:
        log.info("run_finished", job=label, seconds=round(time.monotonic() - started, 3), **counts)
    return counts
