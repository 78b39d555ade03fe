"""`llamacache ls`: list entries with sizes, times, codec and checksum; `-q` for pipes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, render
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import ls as ls_ops
else:
    ls_ops = lazy("llamacache.ops.ls")


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
    null: Annotated[
        bool,
        typer.Option("-0", "--null", help="Print only keys, each ended by NUL (for rm -0 -)."),
    ] = False,
    tier: TierOpt = "local",
    wide: WideOpt = False,
) -> Report:
    """List entries (index only): key, size, times, hits, expiry, codec, checksum."""
    state = state_of(ctx)
    other_filters = [f for f in filters or () if not f.startswith("key~")]
    others = {"--sort": sort != "stored", "--limit": limit is not None}
    if null and tier != "local":
        raise UsageError("-0 lists keys of the local tiers; drop --tier or -0")
    unsupported = {**others, "--filter (other than key~GLOB)": bool(other_filters)}
    if _object.wants_object(tier, unsupported):
        match = next((f[4:] for f in filters or () if f.startswith("key~")), None)
        return _object.ls(state, cache, keys_only=keys_only, match=match)
    if wants_network(tier, unsupported):
        match = next((f[4:] for f in filters or () if f.startswith("key~")), None)
        return _network.ls(state, cache, keys_only=keys_only, match=match)
    report = ls_ops.ls(state.manager(), cache, sort=sort, limit=limit, filters=tuple(filters or ()))
    r = state.renderer(wide=wide)
    for w in report.warnings:
        r.warn(w)
    if (null or keys_only) and not r.json_mode:  # -0: any key survives the pipe
        r.keys((e.key for e in report.entries), null=null)
    else:
        r.emit(report, render.ls_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
