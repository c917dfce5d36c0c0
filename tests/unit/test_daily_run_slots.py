"""The scheduled times a catch-up computes are the ones arq's cron uses, down to the job id
(workers/run_records.py, workers/missed_runs.py): a catch-up and the cron run of one time
share an id, so arq never queues both."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from arq.utils import to_unix_ms

from subledger.settings import Settings
from workers.arq_worker import worker_settings
from workers.run_records import DailyRun

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize("zone", ["Asia/Seoul", "America/New_York", "UTC"])
def test_the_latest_slot_and_job_id_match_arqs_cron(zone: str) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", timezone=zone)
    crons = {job.name: job for job in worker_settings(settings).cron_jobs}
    tz = ZoneInfo(zone)
    for start in (datetime(2026, 3, 7, 23, 59, 59, tzinfo=tz), datetime(2026, 11, 1, 8, 0, tzinfo=tz)):
        for run in DailyRun:
            cron = crons[f"cron:{run.value}_run"]
            cron.calculate_next(start)
            scheduled = cron.next_run
            assert run.latest_slot(scheduled, tz) == scheduled
            assert run.latest_slot(scheduled + timedelta(hours=23), tz) == scheduled
            assert run.latest_slot(scheduled - timedelta(seconds=1), tz) < scheduled
            assert run.job_id(scheduled) == f"{cron.name}:{to_unix_ms(scheduled)}"


def test_latest_slot_is_local_midnight_and_nine() -> None:
    now = datetime(2026, 3, 8, 1, 0, tzinfo=SEOUL)
    assert DailyRun.MIDNIGHT.latest_slot(now, SEOUL) == datetime(2026, 3, 8, tzinfo=SEOUL)
    assert DailyRun.MORNING.latest_slot(now, SEOUL) == datetime(2026, 3, 7, 9, tzinfo=SEOUL)
    assert DailyRun.MIDNIGHT.latest_slot(now, SEOUL).tzinfo == timezone.utc
