"""How the `subledger` command refuses to start: one line on stderr naming the variable, exit 2.

A refusal found while starting (`StartupRefused`, raised by `subledger.app.build` when the
stored events do not fit SUBLEDGER_CIPHER_KEY or the per-user keys do not fit the master
keys) reaches the user as that line, never as a traceback, whichever command started.
Plain `print`, not rich: rich wraps long lines at the terminal's width and reads
`[...]` as markup.
"""
from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer

from subledger.settings import StartupRefused

EXIT_REFUSED = 2


def refuse(line: str) -> NoReturn:
    print(f"subledger: {line}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_REFUSED)


class SubledgerTyper(typer.Typer):
    """typer.Typer whose commands refuse with one line on StartupRefused."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except StartupRefused as refused:
            refuse(str(refused))
