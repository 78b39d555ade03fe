"""`llamacache repair`: quarantine corrupt entries, sweep strays, rebuild the index."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, DryRunOpt, WaitOpt
from llamacache.cli.render import Renderer
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import repair as repair_ops
else:
    repair_ops = lazy("llamacache.ops.repair")


def _human(r: Renderer, rep: repair_ops.RepairReport) -> None:
    for c in rep.caches:
        for a in c.actions:
            what = repr(a.key) if a.key is not None else a.path
            verb = f"would {a.action}" if rep.dry_run else a.action
            r.line(f"{c.name}: {verb}: {what} ({a.reason})")
        if not rep.dry_run:
            r.line(
                f"{c.name}: quarantined {c.quarantined}, dropped {c.rows_dropped} rows, "
                f"removed {c.files_removed} files"
                + (
                    f", rebuilt the index ({c.salvaged_rows} rows salvaged)"
                    if c.index_rebuilt
                    else ""
                )
                + f"; {c.count:,} entries"
            )
    if not any(c.actions for c in rep.caches):
        r.line("nothing to repair")


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
    r.emit_caches(report, _human)
    return report


def register(app: typer.Typer) -> None:
    app.command("repair")(repair)
