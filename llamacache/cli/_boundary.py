"""The one error boundary: every LlamacacheError becomes one line on stderr and its exit code.

Tracebacks only with ``--debug``. A closed stdout pipe (``llamacache ls | head``)
exits quietly; Ctrl-C exits 130 (Typer maps KeyboardInterrupt to that).
"""

from __future__ import annotations

import errno
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from llamacache.cli import render
from llamacache.config.redaction import redact_text
from llamacache.errors import ExitCode, LlamacacheError, LockBusyError, OptionError


def _debug_requested(ctx: typer.Context) -> bool:
    obj = ctx.obj
    return bool(getattr(obj, "debug", False)) or "--debug" in sys.argv


def _fail(message: str, code: int) -> typer.Exit:
    render.error(redact_text(message))  # an error may quote a URL holding a password
    return typer.Exit(code)


def _is_usage_error(exc: BaseException) -> bool:
    """A click UsageError (bad flag, missing argument), but not "no arguments: show help".

    Matched by class name because typer has both used click and vendored it (typer._click).
    """
    names = {(c.__module__.rpartition(".")[2], c.__name__) for c in type(exc).__mro__}
    return ("exceptions", "UsageError") in names and type(exc).__name__ != "NoArgsIsHelpError"


def _usage_failure(exc: Any) -> typer.Exit:
    """A flag error as one line plus a hint, not typer's boxed panel (errors are one line)."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "llamacache"
    render.error(exc.format_message(), hint=f"Try '{path} --help'.")
    return typer.Exit(int(ExitCode.USAGE))


# Root flags that may also be written after the command word (``llamacache verify --json``):
# declared once, on the root, and moved in front of the command before parsing.
ANYWHERE_FLAGS = ("--json", "--quiet")


def hoist_root_flags(args: list[str]) -> list[str]:
    """``args`` with each of ANYWHERE_FLAGS moved to the front (none after ``--``, where
    every word is an argument: ``llamacache rm -- --json`` removes the key "--json")."""
    end = args.index("--") if "--" in args else len(args)
    head = args[:end]
    flags = [a for a in head if a in ANYWHERE_FLAGS]
    return flags + [a for a in head if a not in ANYWHERE_FLAGS] + args[end:]


class ErrorBoundaryGroup(TyperGroup):
    """The root command group; catches our errors around every subcommand."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, hoist_root_flags(list(args)))

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as exc:  # the root's own flags: llamacache --bogus
            if _is_usage_error(exc):
                raise _usage_failure(exc) from None
            raise

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            result = super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            failure = _failure(exc, _debug_requested(ctx))
            if failure is None:
                raise
            raise failure from None
        code = exit_code(result)
        if code:
            raise typer.Exit(code)
        return result


def exit_code(result: object) -> int:
    """The exit status of a command's result: its report's ``exit_code`` (0 for None).

    The one place a successful run's status is decided: commands return their report
    and never raise typer.Exit themselves."""
    return int(getattr(result, "exit_code", ExitCode.OK))


def _failure(exc: Exception, debug: bool) -> typer.Exit | None:
    """What an exception out of a command becomes; None re-raises it (--debug, typer's own)."""
    if isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
        render.silence_stdout()
        return typer.Exit(int(ExitCode.OK))
    if _is_usage_error(exc):
        return _usage_failure(exc)
    if debug:
        return _traceback(exc)
    if isinstance(exc, OptionError):
        return _fail(exc.render(flag_for), int(exc.exit_code))
    if isinstance(exc, LockBusyError):  # --wait takes a duration: "--wait DURATION"
        return _fail(exc.render(lambda name: f"{flag_for(name)} DURATION"), int(exc.exit_code))
    if isinstance(exc, LlamacacheError):
        return _fail(str(exc), int(exc.exit_code))
    if isinstance(exc, OSError):
        return _fail(_os_message(exc), int(ExitCode.PROBLEM))
    if isinstance(exc, ModuleNotFoundError):
        return _fail(missing_package(exc), int(ExitCode.USAGE))
    if isinstance(exc, UnicodeError) and (message := _not_utf8(exc)) is not None:
        return _fail(message, int(ExitCode.USAGE))
    if exc.__class__.__module__.startswith("typer"):
        return None
    name = type(exc).__name__
    return _fail(
        f"unexpected {name}: {exc} (run with --debug for a traceback)", int(ExitCode.PROBLEM)
    )


# An op's argument -> the flag that sets it, where it is not "--" + the name with dashes.
FLAGS_FOR_ARGUMENTS = {"source": "--file", "saved": "--apply", "all_keys": "--all"}


def flag_for(argument: str) -> str:
    """The command-line flag that sets an op's ``argument`` (``to_size`` -> ``--to-size``)."""
    return FLAGS_FOR_ARGUMENTS.get(argument, "--" + argument.replace("_", "-"))


def _traceback(exc: Exception) -> typer.Exit | None:
    """``--debug``: the full traceback, with secrets in it redacted; typer's own re-raise."""
    if exc.__class__.__module__.startswith(("typer", "click")):
        return None
    import traceback

    text = "".join(traceback.format_exception(exc))
    render.traceback_text(redact_text(text))
    code = exc.exit_code if isinstance(exc, LlamacacheError) else ExitCode.PROBLEM
    return typer.Exit(int(code))


# Optional packages and the extra that installs each (an error names what to install).
_EXTRAS = {
    "redis": "llamacache[network]",
    "numpy": "llamacache[ml]",
    "safetensors": "llamacache[ml]",
}


def missing_package(exc: ModuleNotFoundError) -> str:
    """One line naming the missing package and what to install for it."""
    top = (exc.name or str(exc)).partition(".")[0]
    return f"the {top} package is missing; install {_EXTRAS.get(top, top)}"


def _not_utf8(exc: UnicodeError) -> str | None:
    """A command-line argument that is not UTF-8 (Python keeps its bytes as surrogates)."""
    text = getattr(exc, "object", None)
    if not isinstance(text, str) or "surrogate" not in str(getattr(exc, "reason", "")):
        return None
    raw = text.encode("utf-8", "surrogateescape")
    return f"argument {raw!r} is not valid UTF-8; keys and names must be text"


def _os_message(exc: OSError) -> str:
    """An OSError nothing below mapped: ``<path>: <reason>`` (no cache to name here)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason
