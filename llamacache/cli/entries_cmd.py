"""`llamacache put|get|rm`: single entries, the way scripts use a cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.app import state
from llamacache.cli.options import (
    ExistingKeyArg,
    JsonOpt,
    OneCacheOpt,
    QuietOpt,
    TtlOpt,
    complete_keys,
)
from llamacache.cli.render import Renderer
from llamacache.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from llamacache.ops import entries
else:
    entries = lazy("llamacache.ops.entries")


KeyArg = Annotated[str, typer.Argument(help="The entry's key (any string; never a path).")]


def put(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[str | None, typer.Argument(help='The value, or "-" to read stdin.')] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", metavar="PATH", help="Store this file byte-for-byte (streamed)."
        ),
    ] = None,
    cache: OneCacheOpt = "default",
    ttl: TtlOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Store a string, a file (--file) or stdin ("-") under KEY."""
    s = state(ctx)
    if not key:
        raise UsageError('KEY: "" is empty; expected a key of at least one character')
    if (value is None) == (file is None):
        raise UsageError('put needs exactly one of VALUE, "-" (stdin) or --file PATH')
    manager = s.manager()
    if file is not None:
        report = entries.put_stream(manager, cache, key, file, ttl)
    elif value == "-":
        report = entries.put_stream(manager, cache, key, sys.stdin.buffer, ttl)
    else:
        assert value is not None
        report = entries.put_string(manager, cache, key, value, ttl)
    s.renderer(json_out=json_out, quiet=quiet).emit(report, _put_human)


def _put_human(r: Renderer, rep: entries.PutReport) -> None:
    from llamacache.units import format_size

    r.info(f"stored {rep.key!r} in cache {rep.cache!r} ({format_size(rep.bytes)})")


def get(
    ctx: typer.Context,
    key: ExistingKeyArg,
    cache: OneCacheOpt = "default",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="PATH", help="Write the value to this file."),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the value of KEY to stdout (or --out); exit 1 on a miss.

    On a terminal a string or bytes value without a final newline gets one (as redis-cli
    does); piped or --out output is byte-exact.
    """
    s = state(ctx)
    if out is not None:
        _check_out(out)
    manager = s.manager()
    result = entries.get_entry(manager, cache, key)
    if not result.found:
        if s.json or json_out:
            s.renderer(json_out=True).json(result)
        elif not (s.quiet or quiet):
            sys.stderr.write(f"llamacache: miss: {key!r} is not in cache {cache!r}\n")
        raise typer.Exit(int(ExitCode.PROBLEM))
    if s.json or json_out:
        s.renderer(json_out=True).json(result)
        return
    if out is not None:
        tmp = out.with_name(f".{out.name}.llamacache-tmp")
        try:  # a corrupt entry is detected at EOF: never leave half a file under --out
            with open(tmp, "wb") as handle:
                entries.copy_entry_to(manager, result, handle)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        return
    stream = sys.stdout.buffer
    entries.copy_entry_to(manager, result, stream)
    value = result.value
    if isinstance(value, str | bytes) and sys.stdout.isatty() and value[-1:] not in ("\n", b"\n"):
        stream.write(b"\n")  # keep the shell prompt off the value's last line
    stream.flush()


def _check_out(out: Path) -> None:
    """--out must name a file in a folder that exists: say so before anything is read."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; expected a file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")


def rm(
    ctx: typer.Context,
    keys: Annotated[
        list[str] | None,
        typer.Argument(
            help='Keys to remove, or "-" alone to read keys from stdin, one a line.',
            autocompletion=complete_keys,
        ),
    ] = None,
    cache: OneCacheOpt = "default",
    missing_ok: Annotated[
        bool,
        typer.Option("--missing-ok", help="Exit 0, and say nothing, when a key is absent."),
    ] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove KEYS from every tier of a cache; exit 1 if one was not there.

    "-" reads the keys from stdin, one a line (safe for any key, unlike xargs):
    llamacache ls -c training -q | llamacache rm -c training -
    """
    s = state(ctx)
    report = entries.remove_keys(s.manager(), cache, _keys_to_remove(keys or []))
    r = s.renderer(json_out=json_out, quiet=quiet)

    def human(r: Renderer, rep: entries.RemoveReport) -> None:
        r.info(
            f"removed {len(rep.removed)} of {len(rep.removed) + len(rep.missing)} "
            f"from cache {rep.cache!r}"
        )
        for key in () if missing_ok else rep.missing:
            r.warn(f"{key!r} was not in cache {rep.cache!r}")

    r.emit(report, human)
    if report.missing and not missing_ok:
        raise typer.Exit(int(ExitCode.PROBLEM))


def _keys_to_remove(keys: list[str]) -> list[str]:
    """The keys given, or with "-" alone the lines of stdin (blank lines skipped; none is fine)."""
    if not keys:
        raise UsageError('rm needs KEY..., or "-" to read keys from stdin')
    if "-" not in keys:
        return keys
    if len(keys) > 1:
        raise UsageError('"-" (keys from stdin) must be the only KEY')
    lines = sys.stdin.read().splitlines()  # a key literally named "-" can be given this way
    return [line for line in lines if line]


def register(app: typer.Typer) -> None:
    app.command("put")(put)
    app.command("get")(get)
    app.command("rm")(rm)
