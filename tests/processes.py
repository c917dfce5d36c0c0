"""A command run as its own process group, so nothing it started outlives the test.

`subprocess.run(..., timeout=...)` kills only the child it started: the servers a command
like `subledger bench soak` starts (PostgreSQL, Redis, APIs, a worker) would keep running
for the rest of the suite, and every later test would compete with them for the CPU.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_group(
    args: Sequence[str], *, env: dict[str, str], cwd: object, timeout: float, grace: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `args` to completion in a new session. On the timeout, or on any exception here
    (pytest-timeout's included), the group gets SIGINT (the command's own clean-up runs),
    then SIGKILL after `grace` seconds; a timeout is raised as subprocess.TimeoutExpired."""
    process = subprocess.Popen(
        list(args), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGINT)
            try:
                process.communicate(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the command left behind in its group goes too.
        _signal_group(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()
