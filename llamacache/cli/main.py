"""The one error boundary: every LlamacacheError becomes one line on stderr and its exit code.

Tracebacks only with ``--debug``. A closed stdout pipe (``llamacache ls | head``)
exits quietly; Ctrl-C exits 130 (Typer maps KeyboardInterrupt to that).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from llamacache.errors import ExitCode, LlamacacheError, translate_os_error


def _debug_requested(ctx: typer.Context) -> bool:
    obj = ctx.obj
    return bool(getattr(obj, "debug", False)) or "--debug" in sys.argv


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"llamacache: error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


class ErrorBoundaryGroup(TyperGroup):
    """The root command group; catches our errors around every subcommand."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except LlamacacheError as exc:
            if _debug_requested(ctx):
                raise
            raise _fail(str(exc), int(exc.exit_code)) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(int(ExitCode.OK)) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _silence_stdout()
                raise typer.Exit(int(ExitCode.OK)) from None
            if _debug_requested(ctx):
                raise
            raise _fail(_os_message(exc), int(ExitCode.PROBLEM)) from None
        except ModuleNotFoundError as exc:
            if _debug_requested(ctx):
                raise
            raise _fail(missing_package(exc), int(ExitCode.USAGE)) from None
        except Exception as exc:
            if _debug_requested(ctx) or exc.__class__.__module__.startswith("typer"):
                raise
            name = type(exc).__name__
            raise _fail(
                f"unexpected {name}: {exc} (run with --debug for a traceback)",
                int(ExitCode.PROBLEM),
            ) from None


# Optional packages and the extra that installs each (STYLE: name what to install).
_EXTRAS = {"redis": "llamacache[network]", "numpy": "llamacache[ml]", "safetensors": "llamacache[ml]"}


def missing_package(exc: ModuleNotFoundError) -> str:
    """One line naming the missing package and what to install for it."""
    top = (exc.name or str(exc)).partition(".")[0]
    return f"the {top} package is missing; install {_EXTRAS.get(top, top)}"


def _os_message(exc: OSError) -> str:
    """An OSError nothing below mapped: ``<path>: <reason>`` (no cache to name here)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Console-script entry point (``llamacache``)."""
    from llamacache.cli.app import app

    app(prog_name="llamacache")
