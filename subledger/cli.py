"""The `subledger` command (SPEC §1, Commands)."""
from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.console import Console

from benchmarks.proxy import Front
from subledger.cli_keys import keys_app
from subledger.cli_migrate import migrate
from subledger.cli_read_models import audit_app, projections_app, projector
from subledger.cli_startup import SubledgerTyper, refuse
from subledger.settings import Settings, configuration_errors, split_list

app = SubledgerTyper(help="subledger: the billing ledger for subscriptions and point wallets.", no_args_is_help=True)
console = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        *others, last = configuration_errors(error)
        for line in others:
            print(f"subledger: {line}", file=sys.stderr)
        refuse(last)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    reuse_port: bool = typer.Option(
        False, "--reuse-port", help="Bind with SO_REUSEPORT, so several serve processes share the port."
    ),
) -> None:
    """Run the GraphQL API (embedded default: SQLite, sandbox gateway, in-process scheduler)."""
    # The settings first: a refused configuration answers before the app's modules are imported
    # (about 0.25 s of CPU instead of 1.1 s).
    settings = load_settings()
    import structlog
    import uvicorn

    from rich.markup import escape

    from schema.auth import mint_token
    from subledger.app import build
    from subledger.heap import freeze_startup_heap
    from subledger.http_server import UVICORN_TRANSPORT, shared_port_listener
    from subledger.logging import UVICORN_LOGGING, configure_logging, redact_url

    configure_logging(settings.env, settings.log_level)
    built = build(settings)
    freeze_startup_heap()  # full collections no longer stall every request in flight (subledger/heap.py)
    secret = built.services.jwt_secret
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
    # Settings are printed without their secrets: the database URL without its password (SPEC §7).
    if settings.env == "production":  # stderr holds log lines only: JSON, one per line
        structlog.get_logger("subledger").info(
            "serving", url=f"http://{shown}:{port}/graphql", database=redact_url(settings.database_url)
        )
    else:
        console.print(f"subledger on [bold]http://{shown}:{port}/graphql[/bold] ({escape(redact_url(settings.database_url))})")
        console.print(f"operators' console on [bold]http://{shown}:{port}/console/[/bold] (docs/console.md)")
    provider_only = settings.jwks_url and "HS256" not in split_list(settings.jwt_algorithms)
    if provider_only:  # docs/identity-providers.md: the secret's tokens are refused
        console.print("bearer tokens: from the identity provider of SUBLEDGER_JWKS_URL only (no development token)")
    elif settings.env != "production":
        if not settings.jwt_secret:
            console.print("generated a JWT secret for this run (set SUBLEDGER_JWT_SECRET to keep one and mint tokens)")
        token = mint_token(secret, "dev-user", "user admin analyst auditor cron", ttl_seconds=7 * 86400)
        console.print("development token (user dev-user, every scope, 7 days):")
        print(token, flush=True)  # plain print: rich would wrap it at the terminal's width
    if not reuse_port:
        uvicorn.run(built.http, host=host, port=port, log_level=settings.log_level.lower(), **UVICORN_LOGGING, **UVICORN_TRANSPORT)
        return
    listener = shared_port_listener(host, port)
    config = uvicorn.Config(built.http, log_level=settings.log_level.lower(), **UVICORN_LOGGING, **UVICORN_TRANSPORT)
    uvicorn.Server(config).run(sockets=[listener])


@app.command()
def token(
    user: str = typer.Option(..., "--user", help="The token's subject (user id)."),
    scope: str = typer.Option("user", "--scope", help='Space-separated scopes, e.g. "user admin".'),
    ttl: int = typer.Option(86400, "--ttl", help="Seconds until it expires."),
    email: str | None = typer.Option(None),
    name: str | None = typer.Option(None),
) -> None:
    """Mint a development JWT with the configured secret."""
    from schema.auth import SCOPES, mint_token

    settings = load_settings()
    if not settings.jwt_secret:
        console.print("[red]set SUBLEDGER_JWT_SECRET (the server's secret) to mint a token it accepts[/red]")
        raise typer.Exit(2)
    unknown = set(scope.split()) - set(SCOPES)
    if unknown:
        console.print(f"[red]unknown scope(s): {' '.join(sorted(unknown))}[/red] (known: {' '.join(SCOPES)})")
        raise typer.Exit(2)
    extra = {k: v for k, v in {"email": email, "name": name}.items() if v}
    print(mint_token(settings.jwt_secret, user, scope, ttl_seconds=ttl, **extra))


@app.command()
def worker(check: bool = typer.Option(False, "--check", help="Exit 0 if a worker's health check is fresh.")) -> None:
    """Run an arq worker: the scheduled jobs on cron (needs SUBLEDGER_REDIS_URL)."""
    settings = load_settings()  # before the worker's modules: a refusal answers at once
    from arq.worker import check_health

    from subledger.ledger_setup import preflight
    from subledger.logging import configure_logging
    from workers.arq_worker import run_until_stopped, worker_settings

    if not settings.redis_url:
        console.print("[red]subledger worker needs SUBLEDGER_REDIS_URL[/red]")
        raise typer.Exit(2)
    configure_logging(settings.env, settings.log_level)
    settings_cls = worker_settings(settings)
    if check:
        from dataclasses import replace

        from redis.exceptions import RedisError

        # A health check answers at once: no reconnect attempts (arq's default retries 5 times).
        settings_cls.redis_settings = replace(settings_cls.redis_settings, conn_retries=0)
        try:
            raise typer.Exit(check_health(settings_cls))
        except (RedisError, OSError) as error:
            # Host and port only: the URL may carry a password.
            where = f"{settings_cls.redis_settings.host}:{settings_cls.redis_settings.port}"
            refuse(f"SUBLEDGER_REDIS_URL: cannot reach Redis at {where} ({' '.join(str(error).split())})")
    preflight(settings)  # refuse here, in one line, not inside arq's startup
    run_until_stopped(settings_cls)


@app.command("export-schema")
def export_schema() -> None:
    """Print the served GraphQL schema as SDL."""
    from schema.build import schema

    sys.stdout.write(str(schema) + "\n")


@app.command("docs")
def docs(check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if a generated page is out of date.")) -> None:
    """Write the generated pages: docs/errors.md, docs/api-reference.md, docs/configuration.md."""
    from subledger.docs import main

    raise typer.Exit(main(check=check))


@app.command("sandbox-gateway")
def sandbox_gateway(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8090),
    webhook_url: str = typer.Option(
        None, envvar="SUBLEDGER_SANDBOX_WEBHOOK_URL", help="where to POST Toss-shaped payment notifications"
    ),
) -> None:
    """Run the sandbox gateway (Toss-compatible HTTP API) as its own server."""
    from gateways.sandbox_app import run_sandbox_server

    notices = "notifications on" if webhook_url else "no notifications"
    console.print(f"sandbox gateway on http://{host}:{port} (any test_sk_ key; {notices})")
    run_sandbox_server(host, port, webhook_url=webhook_url)


app.add_typer(projections_app, name="projections")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.command()(projector)
app.command("migrate")(migrate)  # also adds `projections status`

bench_app = typer.Typer(help="Benchmarks (docs/performance.md): one JSON line each, with the baseline measured in the same run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("ledger")
def bench_ledger(
    callers: int = typer.Option(16, help="Concurrent callers (and connections for the baseline)."),
    seconds: float = typer.Option(10.0, help="Duration of each half."),
) -> None:
    """Spend commands/s on PostgreSQL against raw single-row INSERT transactions/s."""
    from benchmarks.ledger import run

    run(load_settings().database_url, callers=callers, seconds=seconds)


@bench_app.command("history")
def bench_history(
    events: int = typer.Option(100_000, help="Events in the long wallet."),
    spends: int = typer.Option(200, help="Spends timed on each wallet."),
) -> None:
    """Spend latency on a wallet with a long history against a fresh wallet."""
    from benchmarks.history import run

    run(load_settings().database_url, events=events, spends=spends)


@bench_app.command("graphql")
def bench_graphql(
    seconds: float = typer.Option(10.0, help="Duration of each half."),
    connections: int = typer.Option(16, help="wrk connections, and in-process callers."),
    users: int = typer.Option(200, help="Users (wallets) the spends are spread over."),
    api_processes: int = typer.Option(1, help="serve processes, behind the front below when more than one."),
    front: Front = typer.Option(Front.NGINX, help="In front of several: `nginx` (the compose layout's proxy and "
                                "template) or `reuse-port` (one shared port, SO_REUSEPORT)."),
) -> None:
    """spendPoints mutations/s over HTTP (wrk) against the same command in process, with a projector process."""
    from benchmarks.graphql import run

    run(load_settings().database_url, seconds=seconds, connections=connections, users_count=users,
        api_processes=api_processes, front=front)


@bench_app.command("layers")
def bench_layers(
    requests: int = typer.Option(8000, help="Requests per layer and round (16 at a time)."),
    rounds: int = typer.Option(2, min=1, help="Times each layer is measured, in turn with the others; the lowest is kept."),
) -> None:
    """CPU per spendPoints in the API process, layer by layer: the command, the executor, strawberry, the middleware."""
    from benchmarks.layers import run

    run(load_settings().database_url, requests=requests, rounds=rounds)


@bench_app.command("rebuild")
def bench_rebuild(
    events: int = typer.Option(1_000_000, "--events", min=1, help="Events in the ledger (written first if fewer)."),
) -> None:
    """Events/s rebuilding every read model against decoding the same notifications, in one run."""
    from benchmarks.rebuild import run
    from subledger.app import build
    from subledger.heap import freeze_startup_heap

    built = build(load_settings())
    freeze_startup_heap()  # as `subledger projections rebuild` does (subledger/cli_read_models.py)
    try:
        run(built, events)
    finally:
        built.view_db.close()
        built.ledger.close()


@bench_app.command("renewals")
def bench_renewals(
    subscriptions: int = typer.Option(100_000, help="Subscriptions due on one day."),
    processes: int = typer.Option(2, help="SUBLEDGER_CHARGE_PROCESSES for the run (2: the production layout's)."),
) -> None:
    """Charge N due subscriptions (sandbox: 50 ms latency, cap 64) against the floor N × latency / cap."""
    from benchmarks.renewals import run

    run(load_settings().database_url, count=subscriptions, processes=processes)


@bench_app.command("soak")
def bench_soak(
    minutes: float = typer.Option(10.0, help="Duration of the load."),
    seconds: float | None = typer.Option(None, help="Duration in seconds (overrides --minutes)."),
    clients: int = typer.Option(6, help="Client threads, each with its own users."),
    database_url: str | None = typer.Option(None, envvar="SUBLEDGER_SOAK_DATABASE_URL", help="PostgreSQL to use (a fresh schema); default: a throw-away server."),
    redis_url: str | None = typer.Option(None, envvar="SUBLEDGER_SOAK_REDIS_URL", help="Redis to use; default: a throw-away server."),
) -> None:
    """Mixed load on 2 API processes + 1 worker + the sandbox server, then the invariants; exit 1 on any INTERNAL or violation."""
    from benchmarks.soak import SoakOptions, run

    options = SoakOptions(seconds=seconds if seconds is not None else minutes * 60, clients=clients,
                          database_url=database_url, redis_url=redis_url)
    raise typer.Exit(run(options))


@app.command()
def doctor() -> None:
    """Check the configuration, database, Redis, gateways, clock and time zone: one line each, exit 1 on a FAIL."""
    from subledger.doctor import main

    raise typer.Exit(main())


if __name__ == "__main__":
    app()
