"""The one exception that stops a process from starting (reported by subledger.cli_startup)."""
from __future__ import annotations


class StartupRefused(Exception):
    """The process must not start; the message is one line naming what to set or run."""
