"""The in-process rate limit storage (schema/rate_limit_memory.py): limits' moving window
still counts exactly, expired entries still go, and the clean-up runs at most once per
interval instead of on every counted call. The HTTP side is tests/api/test_rate_limit.py's."""
from __future__ import annotations

import time

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter

from schema.rate_limit_memory import PacedMemoryStorage


async def test_the_moving_window_counts_each_caller_exactly() -> None:
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    three = parse("3/minute")
    assert [await limiter.hit(three, "user", "a") for _ in range(4)] == [True, True, True, False]
    assert await limiter.hit(three, "user", "b", cost=3)
    assert not await limiter.hit(three, "user", "b")
    assert not await limiter.hit(parse("2/minute"), "user", "c", cost=3)
    _, remaining = await limiter.get_window_stats(three, "user", "a")
    assert remaining == 0


async def test_expired_entries_are_dropped_by_the_next_pass() -> None:
    storage = PacedMemoryStorage(interval=0)
    limiter = MovingWindowRateLimiter(storage)
    one = parse("1/second")
    assert await limiter.hit(one, "user", "gone")
    assert not await limiter.hit(one, "user", "gone")
    assert any("gone" in key for key in storage.events)
    time.sleep(1.1)
    assert await limiter.hit(one, "user", "other")  # its pass drops the expired entry
    assert not any("gone" in key for key in storage.events)
    assert await limiter.hit(one, "user", "gone")  # a new window


async def test_a_clean_up_pass_runs_at_most_once_per_interval() -> None:
    storage = PacedMemoryStorage(interval=60)
    limiter = MovingWindowRateLimiter(storage)
    many = parse("1000/minute")
    for n in range(200):
        assert await limiter.hit(many, "user", f"caller-{n % 20}")
    assert storage.passes == 1
    assert len(storage.events) == 20
