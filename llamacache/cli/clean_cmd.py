"""`llamacache clean`: what cron runs — every cache's policy applied, strays swept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, render
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, DryRunOpt, WaitOpt, WideOpt, _duration
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import clean as clean_ops
else:
    clean_ops = lazy("llamacache.ops.clean")


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
    state = state_of(ctx)
    if _object.wants_object(tier, {"--wait": bool(wait)}):
        return _object.clean(state, cache, dry_run, grace)
    if wants_network(tier, {"--wait": bool(wait)}):
        return _network.clean(state, cache, dry_run, grace)
    if grace is not None:
        raise UsageError("--grace: only with --tier network or object (orphan chunks or parts)")
    report = clean_ops.clean(state.manager(), cache, dry_run=dry_run, wait=wait)
    r = state.renderer(wide=wide)
    r.emit_caches(report, render.clean_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("clean")(clean)
