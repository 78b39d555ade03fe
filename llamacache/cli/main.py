"""The console-script entry point, kept light: ``llamacache --version`` answers before typer,
rich or any cache code is imported, and no configuration is read for it (or for --help).

The error boundary itself (every LlamacacheError -> one stderr line and its exit code) is
``cli/_boundary.py``; its names are re-exported here for callers that import them from main.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Global options that take a value: their value is never mistaken for a command.
_VALUED = ("--config", "--cache-dir")
_FLAGS = ("--json", "--quiet", "--debug")


def asks_version(args: list[str]) -> bool:
    """True when the root's own options include --version (before any command word)."""
    it = iter(args)
    for arg in it:
        if arg == "--version":
            return True
        if arg in _VALUED:
            next(it, None)
        elif not (arg.startswith(tuple(f"{v}=" for v in _VALUED)) or arg in _FLAGS):
            return False  # a command, --help, or something typer will report
    return False


def main() -> None:
    """Console-script entry point (``llamacache``)."""
    if "_LLAMACACHE_COMPLETE" not in os.environ and asks_version(sys.argv[1:]):
        from llamacache import __version__

        sys.stdout.write(f"llamacache {__version__}\n")
        return
    from llamacache.cli.app import app

    app(prog_name="llamacache")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system probes e.g. __path__: not ours to load
        raise AttributeError(name)
    from llamacache.cli import _boundary

    return getattr(_boundary, name)
