"""`subledger projector`, `subledger projections rebuild`, `subledger audit verify|replay|reconcile` (SPEC §1)."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
projections_app = typer.Typer(help="Read models: rebuild them from the ledger.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit: replay the ledger, compare it with the read models.", no_args_is_help=True)

#: Seconds between the projector's sweeps of retired read-model tables.
HOUSEKEEPING_SECONDS = 60.0


def _opened(open_: Callable[[Any], Any]) -> Any:
    """Settings from the environment, logging, then `open_(settings)`, for a long-running command."""
    from subledger.cli import load_settings
    from subledger.heap import freeze_startup_heap
    from subledger.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.env, settings.log_level)
    opened = open_(settings)
    freeze_startup_heap()  # subledger/heap.py
    return opened


def _built() -> Any:
    """The service without its HTTP app (subledger/core.py): Strawberry and the GraphQL
    schema are never imported (docs/performance.md); nor is the rest before the settings pass."""
    def open_(settings: Any) -> Any:
        from subledger.core import build_core

        return build_core(settings)

    return _opened(open_)


def _read_side() -> Any:
    """Only the ledger and the read models (subledger/read_side.py): for the commands that
    need nothing else, without the 0.4 s the HTTP app's imports add to every start."""
    def open_(settings: Any) -> Any:
        from subledger.read_side import open_read_side

        return open_read_side(settings.with_secrets())

    return _opened(open_)


class _Rate:
    """A rich progress task fed with (applied, position, target), showing events/s."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=None, rate="")
        self.started = time.perf_counter()

    def __call__(self, applied: int, position: int, target: int) -> None:
        rate = applied / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, completed=position, total=max(target, 1), rate=f"{rate:,.0f} events/s")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), console=console,
    )


@projections_app.command("rebuild")
def rebuild(
    name: str | None = typer.Argument(None, help="The read model to rebuild (see the `projections` query)."),
    all_: bool = typer.Option(False, "--all", help="Rebuild every read model, in one pass over the ledger."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Events per transaction (default: 5,000, projections/copies.py)."
    ),
) -> None:
    """Rebuild read models from position 0 beside the live ones, then switch to them."""
    from domain.errors import DomainError

    if (name is None) == (not all_):
        console.print("[red]give a read model's NAME or --all[/red]")
        raise typer.Exit(2)
    built = _read_side()
    read_models = built.read_models
    if batch_size is not None:
        read_models.rebuilder.batch_size = batch_size
    try:
        with _progress() as progress:
            rate = _Rate(progress, "rebuild " + (name or "all"))
            rows = read_models.rebuild(None if all_ else [name], progress=rate, wait_for_drop=False)
        read_models.rebuilder.close()  # the drop below replaces the background one
        console.print(f"switched; dropping the old tables in {read_models.rebuilder.grace_seconds:.0f}s")
        time.sleep(read_models.rebuilder.grace_seconds)
        read_models.rebuilder.drop_retired(0)
    except DomainError as refused:
        console.print(f"[red]{refused.message}[/red]")
        raise typer.Exit(2 if refused.code == "BAD_USER_INPUT" else 1) from None
    finally:
        built.view_db.close()
        built.ledger.close()
    for row in rows:
        console.print(f"{row['name']}: position {row['position']}, head {row['headPosition']}, lag {row['lag']}")


@audit_app.command("verify")
def verify() -> None:
    """Replay the whole ledger and compare it with every read model; exit 1 on any mismatch."""
    built = _read_side()
    try:
        with _progress() as progress:
            tasks: dict[str, _Rate] = {}

            def step(phase: str, position: int, target: int) -> None:
                rate = tasks.get(phase)
                if rate is None:  # one progress line per phase (made on every step, lines piled up)
                    rate = tasks[phase] = _Rate(progress, phase)
                rate(position, position, target)

            report = built.read_models.verify(progress=step)
    finally:
        built.view_db.close()
        built.ledger.close()
    for line in report.lines():
        print(line)
    console.print(
        f"{report.events_replayed} events replayed, {report.aggregates_checked} aggregates checked, "
        f"{len(report.mismatches) + report.more} mismatch(es)"
    )
    raise typer.Exit(1 if report.mismatches else 0)


class _Count:
    """A rich progress task for a known number of items (reconciliation's payments)."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=None, rate="")

    def total(self, count: int) -> None:
        self.progress.update(self.task, total=max(count, 1))

    def advance(self, step: int) -> None:
        self.progress.advance(self.task, step)


@audit_app.command("reconcile")
def reconcile(
    since: str | None = typer.Option(None, "--since", help="RFC 3339 time or a date (YYYY-MM-DD, UTC); default: every payment."),
) -> None:
    """Ask the gateways about every payment since --since and report each disagreement with the
    ledger (and every order they charged that the ledger lacks); exit 1 on any."""
    import asyncio
    from datetime import timezone

    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        console.print("[red]--since must be a date (YYYY-MM-DD) or an RFC 3339 time[/red]")
        raise typer.Exit(2) from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    built = _built()

    async def run() -> Any:
        try:
            with _progress() as progress:
                return await built.reconcile(start, progress=_Count(progress, "reconcile"))
        finally:
            await built.aclose()

    report = asyncio.run(run())
    for d in report.disagreements:
        print(f"{d.finding.value} provider={d.provider} order={d.order_id} payment={d.payment_id or '-'}"
              f" ledger=[{d.ledger}] gateway=[{d.gateway}]")
    console.print(
        f"{report.payments_checked} payments and {report.gateway_orders_checked} gateway orders checked, "
        f"{len(report.disagreements)} disagreement(s)"
    )
    raise typer.Exit(0 if report.clean else 1)


@audit_app.command("replay")
def replay(
    aggregate: str = typer.Option(..., "--aggregate", help="The aggregate's id."),
    as_of: str | None = typer.Option(None, "--as-of", help="RFC 3339 time with offset; default: now."),
) -> None:
    """Print an aggregate's events (up to --as-of) and its state as of then, as JSON."""
    from uuid import UUID

    from eventsourcing.domain import Aggregate

    from domain.personal_data import redact
    from projections.ledger_log import to_json

    try:
        aggregate_id = UUID(aggregate)
        when = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        console.print("[red]--aggregate must be an aggregate id and --as-of an RFC 3339 time[/red]")
        raise typer.Exit(2) from None
    if when is not None and when.utcoffset() is None:
        console.print("[red]--as-of needs a UTC offset, e.g. 2026-03-01T00:00:00+09:00[/red]")
        raise typer.Exit(2)
    built = _read_side()
    try:
        events = []
        while True:
            page = built.read_models.log.page(events[-1].position if events else 0, 1000, [str(aggregate_id)])
            events.extend(page)
            if len(page) < 1000:
                break
        if when is not None:
            events = [e for e in events if e.occurred_at <= when]
            state = built.ledger.as_of(Aggregate, aggregate_id, when)
        else:
            state = built.ledger.load(Aggregate, aggregate_id)
    finally:
        built.view_db.close()
        built.ledger.close()
    if not events:
        console.print(f"[red]no events of aggregate {aggregate_id}{' by ' + as_of if as_of else ''}[/red]")
        raise typer.Exit(1)
    document = {
        "aggregateId": str(aggregate_id),
        "aggregateType": events[0].aggregate_type,
        "asOf": when.isoformat() if when else None,
        "events": [
            {"position": e.position, "version": e.version, "type": e.type, "occurredAt": e.occurred_at.isoformat(), "data": e.data}
            for e in events
        ],
        # Events come redacted from the log; the state is redacted here (a customer's methods hold billing keys).
        "state": redact(to_json({"version": state.version, **{k: v for k, v in vars(state).items() if not k.startswith("_")}}))
        if state
        else None,
    }
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def projector(
    check: bool = typer.Option(False, "--check", help="Exit 0 if a running projector's heartbeat is fresh and no read model lags."),
    health_file: str | None = typer.Option(None, "--health-file", help="Where the heartbeat is written (default: the temporary directory)."),
) -> None:
    """Run the projections as their own process (production layout); SIGTERM stops it between batches."""
    import structlog

    from subledger.heartbeat import INTERVAL_SECONDS, Heartbeat, default_path

    heartbeat = Heartbeat(Path(health_file) if health_file else default_path())
    if check:
        problem = heartbeat.check()
        if problem:
            print(f"subledger projector: {problem}", file=sys.stderr)
        raise typer.Exit(1 if problem else 0)
    built = _built()
    log = structlog.get_logger("subledger.projector")
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    if built.settings.metrics_port:
        from subledger.metrics_port import serve_metrics

        serve_metrics(built.settings.metrics_port, built.services.extra["refresh_metrics"])
    built.start_projections()
    log.info("projector_started", projections=[r.name for r in built.runners])
    max_lag = built.settings.ready_max_lag
    swept = time.monotonic()
    try:
        while True:
            try:
                rows = built.read_models.status()
                heartbeat.beat([f"projection {r['name']} lags {r['lag']} events" for r in rows if r["lag"] > max_lag])
            except Exception:
                log.exception("heartbeat_failed")  # no fresh heartbeat: the healthcheck fails
            if stopping.wait(INTERVAL_SECONDS):
                break
            if time.monotonic() - swept >= HOUSEKEEPING_SECONDS:
                swept = time.monotonic()
                try:
                    built.read_models.rebuilder.drop_retired(built.read_models.rebuilder.grace_seconds)
                except Exception:
                    log.exception("housekeeping_failed")
    finally:
        heartbeat.remove()
        built.stop_projections()
        log.info("projector_stopped", positions={row["name"]: row["position"] for row in built.read_models.status()})
        built.view_db.close()
        built.ledger.close()
        if built.tracing is not None:
            built.tracing.shutdown()  # the spans still queued go to the collector
