"""deploy/prometheus-alerts.yml: well-formed rules over metric names subledger really
exports, checked and unit-tested by promtool where it is installed (Debian: `prometheus`)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import subledger.app  # noqa: F401  (registers every metric of the API, worker and projector)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus-alerts.test.yml"
NEEDED = {
    "SubledgerDailyRunMissed",
    "SubledgerProjectionLagging",
    "SubledgerChargesFailing",
    "SubledgerPaymentsPendingStale",
}


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_rules_are_well_formed_and_use_exported_metrics() -> None:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert NEEDED <= {rule["alert"] for rule in rules}
    exported = exported_names()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        used = set(re.findall(r"\bsubledger_[a-z_]+", rule["expr"]))
        assert used and used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"
    missed = next(rule for rule in rules if rule["alert"] == "SubledgerDailyRunMissed")
    assert "25 * 3600" in missed["expr"] and "subledger_daily_run_last_success_timestamp_seconds" in missed["expr"]


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus); the YAML test above still ran")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, cwd=DEPLOY)
    assert tested.returncode == 0, tested.stdout + tested.stderr
