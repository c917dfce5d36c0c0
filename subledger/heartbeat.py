"""The projector's health, for a container healthcheck: `subledger projector --check`.

The projector has no HTTP port. While it runs it writes a small JSON file every
`INTERVAL_SECONDS` - when it wrote, and what is wrong (a read model lagging the ledger by
more than SUBLEDGER_READY_MAX_LAG events, as /readyz counts it) - and removes it when it
stops. `--check` reads that file: healthy when it is fresh (written within
`STALE_AFTER_SECONDS`) and names no problem. The file lives in the container's (or the
machine's) temporary directory unless `--health-file` names another.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Seconds between two heartbeats of a running projector.
INTERVAL_SECONDS = 10.0
#: A heartbeat older than this means the projector is stuck or gone.
STALE_AFTER_SECONDS = 3 * INTERVAL_SECONDS


def default_path() -> Path:
    return Path(tempfile.gettempdir()) / "subledger-projector-health.json"


@dataclass(frozen=True)
class Heartbeat:
    path: Path

    def beat(self, problems: list[str]) -> None:
        """Write the heartbeat atomically (a check never reads half a file)."""
        partial = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"at": time.time(), "pid": os.getpid(), "problems": problems}))
        partial.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def check(self, now: float | None = None) -> str | None:
        """None when healthy, else one line saying what is wrong."""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return f"no heartbeat at {self.path}: the projector is not running (or not yet started)"
        except (OSError, ValueError) as error:
            return f"unreadable heartbeat at {self.path}: {error}"
        age = (now or time.time()) - float(state.get("at", 0))
        if age > STALE_AFTER_SECONDS:
            return f"the projector's last heartbeat is {age:.0f}s old (pid {state.get('pid')}): stuck or stopped"
        if state.get("problems"):
            return "; ".join(state["problems"])
        return None
