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
            mapped = translate_os_error(exc, "?", exc.filename or "?")
            if _debug_requested(ctx) or mapped is None:
                raise
            raise _fail(str(mapped), int(mapped.exit_code)) from None
        except Exception as exc:
            if _debug_requested(ctx) or exc.__class__.__module__.startswith("typer"):
                raise
            name = type(exc).__name__
            raise _fail(
                f"unexpected {name}: {exc} (run with --debug for a traceback)",
                int(ExitCode.PROBLEM),
            ) from None


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Console-script entry point (``llamacache``)."""
    from llamacache.cli.app import app

    app(prog_name="llamacache")
