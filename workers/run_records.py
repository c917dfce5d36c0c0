"""The durable record of completed daily runs (00:00 and 09:00, SPEC §6).

One row per run that finished, keyed by (run, scheduled_at): the scheduled instant
it stands for, the `now` its jobs ran with and when it completed, on the job clock.
A worker that starts after a scheduled time with no row runs it at once
(workers/missed_runs.py); the metrics read the latest row of each run.

The rows live in the ledger's own database (beside `user_keys` and the read models),
not in Redis: Redis holds arq's queue and may be flushed or restarted empty, and a
record lost there would only make a run look missed, while a record that outlived a
restored ledger would make a run look done when its charges are gone. Here the record
is backed up and restored with the ledger it describes. It is not a read model: a
rebuild never touches it, and nothing can derive it again from the events.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from enum import Enum
from zoneinfo import ZoneInfo

from domain.periods import daily_run_times
from projections.database import ViewDatabase

DDL = (
    "CREATE TABLE IF NOT EXISTS scheduled_runs ("
    " run TEXT NOT NULL, scheduled_at TEXT NOT NULL, ran_at TEXT NOT NULL, completed_at TEXT NOT NULL,"
    " completions INTEGER NOT NULL, PRIMARY KEY (run, scheduled_at))"
)


class DailyRun(str, Enum):
    """The two scheduled runs; the value names the arq cron function `<value>_run`."""

    MIDNIGHT = "midnight"
    MORNING = "morning"

    @property
    def wall_time(self) -> time:
        return time(0, 0) if self is DailyRun.MIDNIGHT else time(9, 0)

    def latest_slot(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The most recent scheduled instant of this run at or before `now` (UTC)."""
        return daily_run_times(now - timedelta(days=2), now, tz, times=(self.wall_time,))[-1]

    def job_id(self, slot: datetime) -> str:
        """The id arq's own unique cron job gets for this slot (`cron:<function>:<unix ms>`),
        so a catch-up and the cron run of one slot can never both be queued."""
        return f"cron:{self.value}_run:{int(round(slot.timestamp() * 1000))}"


@dataclass(frozen=True)
class CompletedRun:
    run: DailyRun
    scheduled_at: datetime
    ran_at: datetime
    completed_at: datetime
    #: How many times a run of this slot finished: 1 unless it was run again (by hand,
    #: `POST /cron/run`, or a run that did not know of the first).
    completions: int = 1


_COLUMNS = "scheduled_at, ran_at, completed_at, completions"


def _completed(run: DailyRun, row: dict) -> CompletedRun:
    times = (datetime.fromisoformat(row[column]) for column in ("scheduled_at", "ran_at", "completed_at"))
    return CompletedRun(run, *times, completions=int(row["completions"]))


def _text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


class RunRecords:
    def __init__(self, view_db: ViewDatabase, *, create: bool = True) -> None:
        self.view_db = view_db
        if create:  # else `subledger migrate` made it (projections/versions.py)
            with view_db.transaction() as cursor:
                cursor.execute(DDL)

    def record(self, run: DailyRun, scheduled_at: datetime, ran_at: datetime, completed_at: datetime) -> None:
        with self.view_db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO scheduled_runs (run, scheduled_at, ran_at, completed_at, completions) VALUES (?, ?, ?, ?, 1)"
                " ON CONFLICT (run, scheduled_at) DO UPDATE SET ran_at = excluded.ran_at,"
                " completed_at = excluded.completed_at, completions = scheduled_runs.completions + 1",
                (run.value, _text(scheduled_at), _text(ran_at), _text(completed_at)),
            )

    def last(self, run: DailyRun) -> CompletedRun | None:
        """The completed run of the latest scheduled time, if any."""
        with self.view_db.transaction(readonly=True) as cursor:
            row = cursor.execute(
                f"SELECT {_COLUMNS} FROM scheduled_runs WHERE run = ? ORDER BY scheduled_at DESC LIMIT 1", (run.value,)
            ).fetchone()
        return _completed(run, row) if row is not None else None

    def completed(self, run: DailyRun, scheduled_at: datetime) -> bool:
        last = self.last(run)
        return last is not None and last.scheduled_at >= scheduled_at

    def history(self, run: DailyRun) -> list[CompletedRun]:
        """Every completed run of this kind, oldest first (tests, `doctor`-style reports)."""
        with self.view_db.transaction(readonly=True) as cursor:
            rows = cursor.execute(
                f"SELECT {_COLUMNS} FROM scheduled_runs WHERE run = ? ORDER BY scheduled_at", (run.value,)
            ).fetchall()
        return [_completed(run, row) for row in rows]
