"""`llamacache put|get|rm`: single entries, the way scripts use a cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llamacache.cli.app import state
from llamacache.cli.options import JsonOpt, OneCacheOpt, TtlOpt
from llamacache.cli.render import Renderer
from llamacache.errors import ExitCode, UsageError
from llamacache.ops import entries

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
) -> None:
    """Store a string, a file (--file) or stdin ("-") under KEY."""
    s = state(ctx)
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
    s.renderer(json_out=json_out).emit(report, _put_human)


def _put_human(r: Renderer, rep: entries.PutReport) -> None:
    from llamacache.units import format_size

    r.info(f"stored {rep.key!r} in cache {rep.cache!r} ({format_size(rep.bytes)})")


def get(
    ctx: typer.Context,
    key: KeyArg,
    cache: OneCacheOpt = "default",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="PATH", help="Write the value to this file."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the value of KEY to stdout (or --out); exit 1 on a miss."""
    s = state(ctx)
    manager = s.manager()
    result = entries.get_entry(manager, cache, key)
    if not result.found:
        if s.json or json_out:
            s.renderer(json_out=True).json(result)
        elif not s.quiet:
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
    stream.flush()


def rm(
    ctx: typer.Context,
    keys: Annotated[list[str], typer.Argument(help="Keys to remove.")],
    cache: OneCacheOpt = "default",
    missing_ok: Annotated[
        bool, typer.Option("--missing-ok", help="Exit 0 when a key is absent.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove KEYS from every tier of a cache; exit 1 if one was not there."""
    s = state(ctx)
    report = entries.remove_keys(s.manager(), cache, keys)
    r = s.renderer(json_out=json_out)

    def human(r: Renderer, rep: entries.RemoveReport) -> None:
        r.info(
            f"removed {len(rep.removed)} of {len(rep.removed) + len(rep.missing)} "
            f"from cache {rep.cache!r}"
        )
        for key in rep.missing:
            r.warn(f"{key!r} was not in cache {rep.cache!r}")

    r.emit(report, human)
    if report.missing and not missing_ok:
        raise typer.Exit(int(ExitCode.PROBLEM))


def register(app: typer.Typer) -> None:
    app.command("put")(put)
    app.command("get")(get)
    app.command("rm")(rm)
