"""`subledger bench soak` for one minute, as the command runs it (its own PostgreSQL, Redis,
two API processes, a worker and the sandbox server): no INTERNAL error, no answer without a
contract code, and no invariant violation (balances, audit verify, reconciliation,
periods charged twice)."""
from __future__ import annotations

import json
import sys

from benchmarks.deployment import ROOT, service_env
from tests.processes import run_group


def test_one_minute_soak_has_no_internal_error_and_no_violation() -> None:
    env = {k: v for k, v in service_env("unused").items() if k != "SUBLEDGER_DATABASE_URL"}
    done = run_group(
        [sys.executable, "-m", "subledger.cli", "bench", "soak", "--minutes", "1", "--clients", "4"], env=env, cwd=ROOT, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr[-3000:]
    figures = json.loads(lines[-1])
    invariants = figures["invariants"]
    assert figures["bench"] == "soak"
    # On failure the soak prints what its processes logged as errors (their workdir is gone after).
    assert figures["internal_errors"] == 0 and figures["failures"] == 0, (figures["failure_samples"], done.stderr[-6000:])
    assert figures["operations"] > 100 and figures["test_clock_days_advanced"] >= 3, figures
    assert set(figures["per_operation"]) >= {"purchase", "spend", "subscribe", "change_plan", "cancel", "refund"}
    assert invariants["negative_balances"] == [] and invariants["periods_charged_twice"] == [], invariants
    assert invariants["verify_exit"] == 0, invariants["verify_mismatches"]
    assert invariants["reconciliation_findings"] == [] and invariants["reconcile_exit"] == 0, invariants
    assert figures["violations"] == 0 and done.returncode == 0, figures
