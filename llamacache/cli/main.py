"""The console-script entry point, kept light: ``llamacache --version`` answers before typer,
rich or any cache code is imported, and no configuration is read for it (or for --help).

The error boundary itself (every LlamacacheError -> one stderr line and its exit code) is
``cli/_boundary.py``; its names are re-exported here for callers that import them from main.
Ctrl-C exits 130 (Typer maps KeyboardInterrupt to that), and so do SIGTERM and SIGHUP, which
raise KeyboardInterrupt too so every cleanup runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

# Global options that take a value: their value is never mistaken for a command.
_VALUED = ("--config", "--cache-dir")
_FLAGS = ("--json", "--quiet", "--debug")


def first_word(args: list[str]) -> str | None:
    """The first argument that is not a root option or its value: the command word,
    ``--version``/``--help``, or something typer will report (None: nothing)."""
    it = iter(args)
    for arg in it:
        if arg in _VALUED:
            next(it, None)
        elif not (arg.startswith(tuple(f"{v}=" for v in _VALUED)) or arg in _FLAGS):
            return arg
    return None


def asks_version(args: list[str]) -> bool:
    """True when the root's own options include --version (before any command word)."""
    return first_word(args) == "--version"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_like_ctrl_c() -> None:
    """SIGTERM and SIGHUP stop a command the way Ctrl-C does: cleanup runs (a put's
    temporary file, a backup's partial archive are removed) and the exit code is 130.
    ``daemon`` installs its own handlers on top (it finishes a run first)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread / no such signal
            signal.signal(sig, _interrupt)


def main() -> None:
    """Console-script entry point (``llamacache``)."""
    if "_LLAMACACHE_COMPLETE" in os.environ:  # a TAB: the words typed so far are in COMP_WORDS
        typed = os.environ.get("COMP_WORDS", "").split()[1:]
        cword = int(os.environ.get("COMP_CWORD", "0") or 0)
        word = first_word(typed[: max(0, cword - 1)])  # a command word already complete
    else:
        word = first_word(sys.argv[1:])
    if word == "--version" and "_LLAMACACHE_COMPLETE" not in os.environ:
        from llamacache import __version__

        sys.stdout.write(f"llamacache {__version__}\n")
        return
    from llamacache.cli.app import new_app

    stop_like_ctrl_c()
    new_app(only=word)(prog_name="llamacache")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system probes e.g. __path__: not ours to load
        raise AttributeError(name)
    from llamacache.cli import _boundary

    return getattr(_boundary, name)
