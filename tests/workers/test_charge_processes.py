"""A charge run split over two processes (SUBLEDGER_CHARGE_PROCESSES=2) by a real
`subledger worker` on Redis and PostgreSQL: each process charges its own shard, the
gateway and the ledger agree to the won, and every period is charged once."""
from __future__ import annotations

import re

from gateways.sandbox_engine import Faults
from tests.workers.conftest import wait_for
from tests.workers.test_exactly_once import TRIAL_END_DAY, all_settled, charges_per_period, due_subscriptions, fleet  # noqa: F401

BASIC_MONTHLY = 9900
SHARD_LINE = re.compile(r"charge_shard_finished.*?failed=(\d+) pid=(\d+) processed=(\d+) shard=(\d)/2 succeeded=(\d+)")


def test_a_run_split_over_two_processes_charges_each_subscription_once(fleet, start_worker, tmp_path) -> None:  # noqa: F811
    api, engine, url = fleet
    users = due_subscriptions(api, 240)
    engine.set_faults(Faults(latency_ms=20))
    api.built.clock.advance_to(TRIAL_END_DAY)
    start_worker(SUBLEDGER_SANDBOX_URL=url, SUBLEDGER_CHARGE_PROCESSES="2", SUBLEDGER_CHARGE_CONCURRENCY="16",
                 SUBLEDGER_WORKER_TICK_SECONDS="30")
    wait_for(lambda: all_settled(api, users), timeout=240, what="every trial-end charge")
    log = tmp_path / "worker-0.log"
    shards = wait_for(lambda: SHARD_LINE.findall(log.read_text()), timeout=30, what="the shards' log lines")
    # The first run was split: shard 1 in the worker, shard 2 in a process of its own.
    first = {shard: (int(pid), int(succeeded), int(failed), int(processed)) for failed, pid, processed, shard, succeeded in shards[:2]}
    assert set(first) == {"1", "2"}, shards
    assert first["1"][0] != first["2"][0], "both shards ran in one process"
    assert first["1"][1] > 60 and first["2"][1] > 60 and first["1"][1] + first["2"][1] == 240, first
    assert first["1"][2] == first["2"][2] == 0
    assert first["1"][3] + first["2"][3] == 240, "the shards overlap"
    # Both sides of the money: the gateway's charges and the ledger's payments, to the won.
    periods = charges_per_period(engine)
    assert len(periods) == 240 and set(periods.values()) == {1}
    assert sum(int(charge["amount"]) for charge in engine.charges()) == 240 * BASIC_MONTHLY
    api.built.catch_up()
    with api.built.view_db.transaction(readonly=True) as cursor:
        row = cursor.execute(
            f"SELECT COUNT(*) AS n, SUM(amount) AS won FROM {api.built.services.payments.table} WHERE status = 'SUCCEEDED'"
        ).fetchone()
    assert (int(row["n"]), int(row["won"])) == (240, 240 * BASIC_MONTHLY)
