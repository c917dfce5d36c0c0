"""`subledger keys generate|status|rotate|encrypt-ledger` (docs/keys.md).

- `generate` prints a new random key: a master key (URL-safe base64 of 32 bytes) or,
  with `--cipher`, a cipher key (standard base64 of 32 bytes).
- `status` prints how many per-user keys each master key wraps (by key id, never a key).
- `rotate` re-wraps every per-user key under SUBLEDGER_MASTER_KEY, unwrapping with it or
  with SUBLEDGER_MASTER_KEY_PREVIOUS (an environment variable rather than an option, so a
  key never lands in shell history or a process listing). It changes no event: the events
  were sealed with the per-user keys, which stay the same. Safe while the service runs.
- `encrypt-ledger` encrypts the stored events of a ledger written without
  SUBLEDGER_CIPHER_KEY, in place (subledger/ledger_cipher.py); every other process stopped.
"""
from __future__ import annotations

import sys

import typer

from subledger.cli_startup import refuse

keys_app = typer.Typer(help="Keys: the master key of per-user keys, and the ledger's cipher key.", no_args_is_help=True)


@keys_app.command("generate")
def generate(cipher: bool = typer.Option(False, "--cipher", help="A SUBLEDGER_CIPHER_KEY instead of a master key.")) -> None:
    """Print a new random key (32 bytes, base64) for SUBLEDGER_MASTER_KEY, or SUBLEDGER_CIPHER_KEY with --cipher."""
    from subledger.master_keys import generate_key

    print(generate_key(urlsafe=not cipher))


def _user_keys():  # type: ignore[no-untyped-def]
    from projections.database import ViewDatabase
    from subledger.cli import load_settings
    from subledger.storage import Database
    from subledger.user_keys import SqlUserKeys

    settings = load_settings()
    view_db = ViewDatabase.open(Database.from_url(settings.database_url), pool_size=2)
    return SqlUserKeys(view_db, settings.keyring), view_db


@keys_app.command("status")
def status() -> None:
    """Per-user keys by the master key that wraps them ("unwrapped": stored in clear)."""
    keys, view_db = _user_keys()
    try:
        counts = keys.counts()
    finally:
        view_db.close()
    current = keys.keyring.current_id
    print(f"SUBLEDGER_MASTER_KEY: {current or 'not set'}")
    for name, count in sorted(counts.items()):
        role = " (current)" if name == current else " (previous)" if name in keys.keyring.known_ids else ""
        print(f"{name}{role}: {count}")


def _rewrap_webhook_secrets(keyring, view_db) -> int:  # type: ignore[no-untyped-def]
    """Webhook signing secrets are wrapped by the master key too (docs/webhooks.md)."""
    from subledger.webhook_endpoints import WebhookEndpoints

    return WebhookEndpoints(view_db, keyring, https_only=False).rewrap()


@keys_app.command("rotate")
def rotate(batch_size: int = typer.Option(500, "--batch-size", min=1, help="Rows per transaction.")) -> None:
    """Re-wrap every per-user key under SUBLEDGER_MASTER_KEY; events are not touched."""
    from subledger.master_keys import UnknownMasterKey

    keys, view_db = _user_keys()
    if keys.keyring.current is None:
        view_db.close()
        refuse("keys rotate needs SUBLEDGER_MASTER_KEY (the new master key; the old one in SUBLEDGER_MASTER_KEY_PREVIOUS)")
    try:
        report = keys.rotate(batch_size)
        secrets = _rewrap_webhook_secrets(keys.keyring, view_db)
    except UnknownMasterKey as unknown:
        refuse(f"{unknown}: set the old key as SUBLEDGER_MASTER_KEY_PREVIOUS (rows re-wrapped so far stay re-wrapped)")
    except ValueError as damaged:  # a row that does not verify: tampered, or copied from another user
        refuse(f"{damaged}; rows re-wrapped so far stay re-wrapped")
    finally:
        view_db.close()
    print(
        f"re-wrapped {report.rewrapped}, wrapped {report.wrapped} that were unwrapped, {report.current} already current,"
        f" {report.erased_meanwhile} erased meanwhile; {report.left} left under another key;"
        f" {secrets} webhook signing secrets re-wrapped"
    )
    if report.left:
        refuse(
            f"{report.left} per-user key(s) were written meanwhile under another master key: give every process"
            " the new SUBLEDGER_MASTER_KEY, then run `subledger keys rotate` again"
        )


@keys_app.command("encrypt-ledger")
def encrypt_ledger(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Rows per transaction."),
    vacuum: bool = typer.Option(True, "--vacuum/--no-vacuum", help="Reclaim the pages that held the plain payloads."),
) -> None:
    """Encrypt, in place, the stored events and snapshots written without SUBLEDGER_CIPHER_KEY.
    Stop every other process first; running it again finishes an interrupted run."""
    from subledger.cli import load_settings
    from subledger.ledger_cipher import ForeignKey
    from subledger.ledger_cipher import encrypt_ledger as run
    from subledger.storage import Database

    settings = load_settings()
    if not settings.cipher_key:
        refuse("keys encrypt-ledger needs SUBLEDGER_CIPHER_KEY (the key to encrypt with; `subledger keys generate --cipher`)")
    counted = {"events": 0, "snapshots": 0}

    def progress(what: str, rows: int) -> None:
        counted[what] += rows
        print(f"{what}: {counted[what]} read", file=sys.stderr, flush=True)

    try:
        report = run(Database.from_url(settings.database_url), settings.cipher_key, batch_size=batch_size,
                     vacuum=vacuum, progress=progress)
    except ForeignKey as foreign:
        refuse(f"{foreign}: run it with the key the ledger was encrypted with")
    print(
        f"encrypted {report.events_encrypted} events and {report.snapshots_encrypted} snapshots"
        f" ({report.events_already} and {report.snapshots_already} already were)"
        + ("; vacuumed" if report.vacuumed else "")
    )
