"""The projector's heartbeat file (subledger/heartbeat.py): fresh and clean is healthy; missing,
stale, unreadable or naming a lagging read model is not, each said in one line."""
from __future__ import annotations

import time
from pathlib import Path

from subledger.heartbeat import STALE_AFTER_SECONDS, Heartbeat


def test_a_fresh_heartbeat_without_problems_is_healthy(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "health.json")
    heartbeat.beat([])
    assert heartbeat.check() is None
    assert list(tmp_path.iterdir()) == [tmp_path / "health.json"]  # no partial file left


def test_every_unhealthy_state_is_one_line(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "health.json")
    assert "not running" in heartbeat.check()
    heartbeat.beat(["projection payments lags 20000 events"])
    assert heartbeat.check() == "projection payments lags 20000 events"
    heartbeat.beat([])
    stale = heartbeat.check(now=time.time() + STALE_AFTER_SECONDS + 5)
    assert stale is not None and "old" in stale
    heartbeat.path.write_text("{half")
    assert "unreadable" in heartbeat.check()
    heartbeat.remove()
    assert "not running" in heartbeat.check()
    for problem in (heartbeat.check(), stale):
        assert "\n" not in problem
