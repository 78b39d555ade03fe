"""`llamacache inspect`: one screen of what is in each cache and whether it is healthy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.render import Renderer, size
from llamacache.cli.state import state
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.manager import CacheManager
    from llamacache.ops import inspect as inspect_ops
    from llamacache.ops import network_admin
    from llamacache.ops import page_cache as page_cache_ops
else:
    inspect_ops = lazy("llamacache.ops.inspect")
    page_cache_ops = lazy("llamacache.ops.page_cache")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


TIER_COLUMNS = (
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
)
TIER_NUMBERS = TIER_COLUMNS[1:6] + TIER_COLUMNS[8:]
TIER_WIDE_ONLY = ("ratio", "oldest", "expired", "hits", "misses")


def _network_row(row: tuple[str, ...], info: network_admin.NetworkInfo | None) -> tuple[str, ...]:
    """The network row with what the server said: this cache's entries, and the server's
    memory use and limit (Redis does not account memory per key prefix)."""
    if info is None:
        return row
    if not info.reachable:
        return (row[0], "unreachable", *("-" for _ in row[2:]))
    limit = size(info.maxmemory) if info.maxmemory else "-"
    used = size(info.used_memory)
    pct = (
        "-"
        if not info.maxmemory or info.used_memory is None
        else _pct(100 * info.used_memory / info.maxmemory)
    )
    return (row[0], f"{info.entries:,}", used, limit, pct, *row[5:])


def _human(
    r: Renderer,
    rep: inspect_ops.InspectReport,
    network: dict[str, network_admin.NetworkInfo] | None = None,
) -> None:
    if not rep.caches:
        r.line("no caches on disk yet")
    for c in rep.caches:
        traits = [c.policy, c.checksum, f"compression {c.compression}"]
        traits += [c.format] if c.format else []
        traits += ["read-only"] if c.read_only else []
        r.line(f"cache {c.name!r}: " + ", ".join(traits))
        r.line(f"  path: {c.path}")
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
                    r.time(t.oldest),
                    r.time(t.newest),
                    f"{t.expired:,}",
                    f"{k['hits']:,}",
                    f"{k['misses']:,}",
                    _pct(None if t.hit_rate is None else 100 * t.hit_rate),
                    f"{k['evictions']:,}",
                )
            )
        shown: list[tuple[str, ...]] = list(rows)
        if network is not None and c.name in network:
            if not any(row[0] == "network" for row in shown):
                shown.append(("network", *("-",) * 7, "0", "0", "0", "-", "0"))
            info = network[c.name]
            shown = [_network_row(row, info) if row[0] == "network" else row for row in shown]
        r.table(None, TIER_COLUMNS, shown, right=TIER_NUMBERS, wide_only=TIER_WIDE_ONLY)
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
                        r.time(e.stored),
                        r.time(e.accessed),
                        "file" if e.file else "inline",
                    )
                    for e in c.top
                ],
                right=("size",),
                wide_only=("stored",),
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
    page_cache: Annotated[
        bool,
        typer.Option(
            "--page-cache",
            help="Also measure how much of the file entries is in the OS page cache "
            "(mincore; the 1,000 largest files of each cache).",
        ),
    ] = False,
    wide: WideOpt = False,
) -> Report:
    """Entries, size vs limit, ages, counters and free space per cache and tier (index only)."""
    s = state(ctx)
    if _object.wants_object(tier, {"--reset-stats": reset_stats, "--top": top > 0}):
        return _object.inspect(s, cache)
    if wants_network(tier, {"--reset-stats": reset_stats}):
        return _network.inspect(s, cache, top)
    report = inspect_ops.inspect(s.manager(), cache, top=top, reset_stats=reset_stats)
    r = s.renderer(wide=wide)
    net = _network_figures(s.manager(), cache)
    resident = page_cache_ops.residency(s.manager(), cache) if page_cache else None
    figures = None if net is None else {i.cache: i for i in net.caches}

    def human(r: Renderer, rep: inspect_ops.InspectReport) -> None:
        _human(r, rep, figures)
        if resident is not None:
            _page_cache_human(r, resident)

    r.emit_caches(report, human, sections={"network": net, "page_cache": resident})
    for c in report.caches:
        if c.advice:
            r.info(f"{c.name}: {c.advice}")
    return report


def _page_cache_human(r: Renderer, rep: page_cache_ops.PageCacheReport) -> None:
    if not rep.available:
        r.line(f"page cache: residency unknown ({rep.reason})")
        return
    for c in rep.caches:
        if not c.files:
            r.line(f"page cache, {c.cache}: no file entries")
            continue
        pct = 100 * (c.resident_bytes or 0) / c.file_bytes if c.file_bytes else 0.0
        which = f"the {c.files:,} largest files" if c.sampled else f"{c.files:,} files"
        r.line(
            f"page cache, {c.cache}: {size(c.resident_bytes)} of {size(c.file_bytes)} "
            f"resident ({pct:.0f}%) in {which}"
        )


def _network_figures(
    manager: CacheManager, cache: str | None
) -> network_admin.NetworkInspectReport | None:
    """The shared tier's figures when one is configured and the redis client is installed
    (an unreachable server answers within its 1 s connect timeout: the row says so)."""
    settings = manager.settings
    if settings.network is None or (cache is not None and not settings.cache(cache).network):
        return None
    try:
        from llamacache.ops import network_admin
    except ModuleNotFoundError:  # no redis client: the local view is still whole
        return None
    return network_admin.inspect_network(manager, cache)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
