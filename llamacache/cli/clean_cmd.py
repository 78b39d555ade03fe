"""`llamacache clean`: what cron runs — every cache's policy applied, strays swept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, DryRunOpt, WaitOpt, WideOpt, _duration
from llamacache.cli.render import Renderer, size
from llamacache.cli.state import state
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import clean as clean_ops
else:
    clean_ops = lazy("llamacache.ops.clean")


def _human(r: Renderer, rep: clean_ops.CleanReport) -> None:
    rows = [
        (
            c.name,
            f"{c.expired:,}",
            f"{c.aged_out:,}",
            f"{c.evicted:,} ({size(c.evicted_bytes)})",
            f"{c.stale_tmp:,}",
            f"{c.orphans:,}",
            f"{size(c.used_bytes)} / {size(c.limit_bytes)}",
            "over" if c.over_limit else "ok",
        )
        for c in rep.caches
    ]
    r.table(
        "clean (dry run: nothing removed)" if rep.dry_run else None,
        (
            "cache",
            "expired",
            "max_age",
            "evicted",
            "stale tmp",
            "orphans",
            "used / limit",
            "budget",
        ),
        rows,
        right=("expired", "max_age", "evicted", "stale tmp", "orphans"),
        wide_only=("max_age", "stale tmp", "orphans"),
    )
    if rep.temp_dir is not None:
        r.line(f"temp_dir {rep.temp_dir}: {rep.temp_files} old files ({size(rep.temp_bytes)})")
    verb = "would free" if rep.dry_run else "freed"
    r.line(f"{verb} {size(rep.freed_bytes)} in {rep.removed:,} entries and files")
    for c in rep.caches:
        if c.over_limit and not rep.dry_run:
            r.warn(over_limit_message(c.name, c.used_bytes, c.limit_bytes))


def over_limit_message(cache: str, used: int, limit: int) -> str:
    """Over budget after a clean: which setting sizes the cache, and its variable."""
    from llamacache._config_schema import cache_env

    return (
        f"cache {cache!r} is still over its limit ({size(used)} of {size(limit)}): its policy "
        f"could not evict enough; raise caches.{cache}.size ({cache_env(cache, 'size')}) or "
        f"remove entries with 'llamacache evict -c {cache}'"
    )


def clean(
    ctx: typer.Context,
    cache: CacheOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = 0.0,
    tier: TierOpt = "local",
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            parser=_duration,
            metavar="DURATION",
            help="With --tier network or object: keep orphan chunks or unreferenced parts "
            'younger than this (an upload in flight), default "5m" (network), "1d" (object).',
        ),
    ] = None,
    wide: WideOpt = False,
) -> Report:
    """Apply each cache's policy: expire, age out, evict to threshold, sweep strays (cron)."""
    s = state(ctx)
    if _object.wants_object(tier, {"--wait": bool(wait)}):
        return _object.clean(s, cache, dry_run, grace)
    if wants_network(tier, {"--wait": bool(wait)}):
        return _network.clean(s, cache, dry_run, grace)
    if grace is not None:
        raise UsageError("--grace: only with --tier network or object (orphan chunks or parts)")
    report = clean_ops.clean(s.manager(), cache, dry_run=dry_run, wait=wait)
    r = s.renderer(wide=wide)
    r.emit_caches(report, _human)
    return report


def register(app: typer.Typer) -> None:
    app.command("clean")(clean)
