"""`llamacache put|get|rm`: single entries, the way scripts use a cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import (
    ExistingKeyArg,
    OneCacheOpt,
    TtlOpt,
    complete_keys,
)
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import entries as entries_ops
else:
    entries_ops = lazy("llamacache.ops.entries")


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
) -> Report:
    """Store a string, a file (--file) or stdin ("-") under KEY."""
    state = state_of(ctx)
    _check_key(key)
    if (value is None) == (file is None):
        raise UsageError('put needs exactly one of VALUE, "-" (stdin) or --file PATH')
    manager = state.manager()
    if file is not None:
        report = entries_ops.put_stream(manager, cache, key, file, ttl)
    elif value == "-":
        report = entries_ops.put_stream(manager, cache, key, sys.stdin.buffer, ttl)
    else:
        assert value is not None
        report = entries_ops.put_string(manager, cache, key, value, ttl)
    state.renderer().emit(report, render.put_view)
    return report


def get(
    ctx: typer.Context,
    key: ExistingKeyArg,
    cache: OneCacheOpt = "default",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="PATH", help="Write the value to this file."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write a binary value to the terminal anyway."),
    ] = False,
) -> Report:
    """Write the value of KEY to stdout (or --out); exit 1 on a miss or a damaged entry.

    The value is verified before its first byte is written. A string value ends with a
    newline on stdout, as other values do; bytes and files are written byte-exact, and
    binary data is refused on a terminal unless --force. --out writes the value exactly,
    to a new file readable by its owner only (a temp file renamed into place). A model file is
    found by the name warm shows for it: llamacache get -c model MODEL@REVISION/PATH.
    """
    state = state_of(ctx)
    _check_key(key)
    if out is not None:
        _check_out(out)
    r = state.renderer()
    result = entries_ops.get_entry(state.manager(), cache, key)
    try:
        if r.json_mode:
            r.json(result)
        elif not result.found:
            if not r.quiet:
                r.status(f"miss: {key!r} is not in cache {cache!r}")
        elif out is not None:
            entries_ops.save_value(result, out)
        else:
            with r.binary() as (stream, terminal):
                if terminal and not force and entries_ops.looks_binary(result):
                    raise UsageError(
                        f"{key!r} holds binary data; not writing it to the terminal "
                        "(use --out PATH or a pipe, or --force)"
                    )
                entries_ops.write_value(result, stream)
    finally:
        result.close()
    return result


def _check_key(key: str) -> None:
    """An empty key can be neither stored nor found: a usage error, for put and get alike."""
    if not key:
        raise UsageError('KEY: "" is empty; expected a key of at least one character')


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
    null: Annotated[
        bool,
        typer.Option("-0", "--null", help='With "-": keys on stdin end with NUL, not newline.'),
    ] = False,
) -> Report:
    """Remove KEYS from every tier of a cache; exit 1 if one was not there.

    "-" reads the keys from stdin, one a line (split on "\\n" only), or NUL-separated
    with -0 (safe for any key, unlike xargs):
    llamacache ls -c training -0 | llamacache rm -c training -0 -
    """
    state = state_of(ctx)
    report = entries_ops.remove_keys(
        state.manager(), cache, _keys_to_remove(keys or [], null), missing_ok=missing_ok
    )
    state.renderer().emit(report, render.remove_view)
    return report


def _keys_to_remove(keys: list[str], null: bool = False) -> list[str]:
    """The keys given, or with "-" alone the keys on stdin (empty ones skipped; none is fine).

    Split on "\\n" (or NUL with -0) only: ``splitlines`` would also split on U+2028, \\x1c,
    \\x85 ..., which are legal inside keys, and delete the wrong entries.
    """
    if not keys:
        raise UsageError('rm needs KEY..., or "-" to read keys from stdin')
    if "-" not in keys:
        if null:
            raise UsageError('-0 applies to keys read from stdin: give "-" as the only KEY')
        return keys
    if len(keys) > 1:
        raise UsageError('"-" (keys from stdin) must be the only KEY')
    data = sys.stdin.buffer.read()  # a key literally named "-" can be given this way
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"stdin: byte {data[exc.start : exc.start + 1]!r} at offset {exc.start} is not "
            "UTF-8; keys are text"
        ) from None
    return [k for k in text.split("\0" if null else "\n") if k]


def register(app: typer.Typer) -> None:
    app.command("put")(put)
    app.command("get")(get)
    app.command("rm")(rm)
