"""`llamacache inspect`: one screen of what is in each cache and whether it is healthy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, render
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.manager import CacheManager
    from llamacache.ops import inspect as inspect_ops
    from llamacache.ops import network_admin
    from llamacache.ops import page_cache as page_cache_ops
else:
    inspect_ops = lazy("llamacache.ops.inspect")
    page_cache_ops = lazy("llamacache.ops.page_cache")


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
    state = state_of(ctx)
    if _object.wants_object(tier, {"--reset-stats": reset_stats, "--top": top > 0}):
        return _object.inspect(state, cache)
    if wants_network(tier, {"--reset-stats": reset_stats}):
        return _network.inspect(state, cache, top)
    report = inspect_ops.inspect(state.manager(), cache, top=top, reset_stats=reset_stats)
    r = state.renderer(wide=wide)
    net = _network_figures(state.manager(), cache)
    resident = page_cache_ops.residency(state.manager(), cache) if page_cache else None
    figures = None if net is None else {i.cache: i for i in net.caches}
    r.emit_caches(
        report,
        lambda r, rep: render.inspect_view(r, rep, figures, resident),
        sections={"network": net, "page_cache": resident},
    )
    for c in report.caches:
        if c.advice:
            r.info(f"{c.name}: {c.advice}")
    return report


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
