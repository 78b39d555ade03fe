"""`llamacache inspect`: one screen of what is in each cache and whether it is healthy."""

from __future__ import annotations

from typing import Annotated

import typer

from llamacache.cli import _network
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.app import state
from llamacache.cli.options import CacheOpt, JsonOpt, QuietOpt
from llamacache.cli.render import Renderer, size, when
from llamacache.ops import inspect as inspect_ops


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def _human(r: Renderer, rep: inspect_ops.InspectReport) -> None:
    if not rep.caches:
        r.line("no caches on disk yet")
    for c in rep.caches:
        flags = " (read-only)" if c.read_only else ""
        r.line(
            f"cache {c.name!r}: {c.path}{flags}  policy {c.policy}, checksum {c.checksum}, "
            f"compression {c.compression}" + (f", format {c.format}" if c.format else "")
        )
        rows = []
        for t in c.tiers:
            k = t.counters
            rows.append(
                (
                    t.tier,
                    "-" if t.entries is None else f"{t.entries:,}",
                    size(t.bytes),
                    size(t.limit) if t.limit else "-",
                    _pct(t.percent_of_limit),
                    "-" if t.compression_ratio is None else f"{t.compression_ratio:.2f}x",
                    when(t.oldest),
                    when(t.newest),
                    f"{t.expired:,}",
                    f"{k['hits']:,}",
                    f"{k['misses']:,}",
                    _pct(None if t.hit_rate is None else 100 * t.hit_rate),
                    f"{k['evictions']:,}",
                )
            )
        r.table(
            None,
            (
                "tier",
                "entries",
                "used",
                "limit",
                "% limit",
                "ratio",
                "oldest",
                "newest",
                "expired",
                "hits",
                "misses",
                "hit rate",
                "evictions",
            ),
            rows,
            right=(
                "entries",
                "used",
                "limit",
                "% limit",
                "ratio",
                "expired",
                "hits",
                "misses",
                "hit rate",
                "evictions",
            ),
        )
        free = "-" if c.fs_free is None else f"{size(c.fs_free)} free of {size(c.fs_total)}"
        r.line(f"quarantined: {c.quarantined}   filesystem: {free}")
        if c.unshared:
            r.line(f"unshared: {c.unshared} writes not yet on the shared tier (retrying)")
        if c.top:
            r.table(
                f"largest {len(c.top)} entries",
                ("key", "size", "stored", "accessed", "where"),
                [
                    (
                        e.key,
                        size(e.bytes),
                        when(e.stored),
                        when(e.accessed),
                        "file" if e.file else "inline",
                    )
                    for e in c.top
                ],
                right=("size",),
            )
        r.line("")


def inspect(
    ctx: typer.Context,
    cache: CacheOpt = None,
    top: Annotated[
        int, typer.Option("--top", min=0, metavar="N", help="Also list the N largest entries.")
    ] = 0,
    reset_stats: Annotated[
        bool, typer.Option("--reset-stats", help="Zero the persisted hit/miss counters after.")
    ] = False,
    tier: TierOpt = "local",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Entries, size vs limit, ages, counters and free space per cache and tier (index only)."""
    s = state(ctx)
    if wants_network(tier, {"--reset-stats": reset_stats}):
        return _network.inspect(s, cache, json_out, quiet, top)
    report = inspect_ops.inspect(s.manager(), cache, top=top, reset_stats=reset_stats)
    r = s.renderer(json_out=json_out, quiet=quiet)
    r.emit_caches(report, _human)
    for c in report.caches:
        if c.advice:
            r.info(f"{c.name}: {c.advice}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
