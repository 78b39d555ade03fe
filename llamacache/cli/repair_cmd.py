"""`llamacache repair`: quarantine corrupt entries, sweep strays, rebuild the index."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, DryRunOpt, WaitOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import repair as repair_ops
else:
    repair_ops = lazy("llamacache.ops.repair")


def repair(
    ctx: typer.Context,
    cache: CacheOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = 0.0,
) -> Report:
    """Fix what verify finds: quarantine corrupt entries, remove strays, rebuild counts."""
    state = state_of(ctx)
    report = repair_ops.repair(state.manager(), cache, dry_run=dry_run, wait=wait)
    r = state.renderer()
    r.emit_caches(report, render.repair_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("repair")(repair)
