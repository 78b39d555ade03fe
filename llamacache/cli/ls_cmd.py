"""`llamacache ls`: list entries with sizes, times, codec and checksum; `-q` for pipes."""

from __future__ import annotations

from typing import Annotated

import typer

from llamacache.cli.app import state
from llamacache.cli.options import CacheOpt, JsonOpt
from llamacache.cli.render import Renderer, size, when
from llamacache.ops import ls as ls_ops


def _human(r: Renderer, rep: ls_ops.LsReport) -> None:
    r.table(
        None,
        (
            "cache",
            "key",
            "size",
            "stored",
            "accessed",
            "hits",
            "expires",
            "kind",
            "codec",
            "checksum",
        ),
        [
            (
                e.cache,
                e.key,
                size(e.bytes),
                when(e.stored),
                when(e.accessed),
                e.hits,
                when(e.expires),
                e.kind or "?",
                e.codec or "?",
                f"{e.checksum}:{(e.digest or '')[:12]}" if e.header_ok else "DAMAGED HEADER",
            )
            for e in rep.entries
        ],
        right=("size", "hits"),
    )
    if rep.total > len(rep.entries):
        r.info(f"showing {len(rep.entries):,} of {rep.total:,} entries")


def ls(
    ctx: typer.Context,
    cache: CacheOpt = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            metavar="FIELD[:asc|:desc]",
            help="size, accessed, stored, hits, key or expires.",
        ),
    ] = "stored",
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, metavar="N", help="At most N entries.")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="EXPR",
            help='Repeatable: "size>1GB", "accessed>30d", "hits<2", "key~tok*".',
        ),
    ] = None,
    keys_only: Annotated[
        bool, typer.Option("-q", "--keys-only", help="Print only keys, one per line.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List entries (index only): key, size, times, hits, expiry, codec, checksum."""
    s = state(ctx)
    report = ls_ops.ls(s.manager(), cache, sort=sort, limit=limit, filters=tuple(filters or ()))
    r = s.renderer(json_out=json_out)
    for w in report.warnings:
        r.warn(w)
    if keys_only and not r.json_mode:
        for e in report.entries:
            typer.echo(e.key)
        return
    r.emit(report, _human)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
