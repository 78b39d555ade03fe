"""`llamacache evict`: remove entries by key, glob, age, size, revision or target size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, options, render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, DryRunOpt, WaitOpt, WideOpt, YesOpt
from llamacache.cli.render import size
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import evict as evict_ops
else:
    evict_ops = lazy("llamacache.ops.evict")


def evict(
    ctx: typer.Context,
    cache: CacheOpt = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            metavar="KEY",
            help="This key (repeatable).",
            autocompletion=options.complete_keys,
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option("--match", metavar="GLOB", help='Keys matching a glob, e.g. "tok*".'),
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            parser=options._duration,
            metavar="DURATION",
            help='Not accessed for this long, e.g. "30d".',
        ),
    ] = None,
    larger_than: Annotated[
        int | None,
        typer.Option(
            "--larger-than",
            parser=options._size,
            metavar="SIZE",
            help='Entries larger than this, e.g. "1GB".',
        ),
    ] = None,
    to_size: Annotated[
        str | None,
        typer.Option(
            "--to-size",
            metavar="SIZE|PERCENT",
            help='Evict in policy order until the cache is under "4GB" or "50%" of its size.',
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last",
            metavar="N",
            help="Keep each model's N newest revisions (and the files only older ones use).",
        ),
    ] = None,
    tier: Annotated[
        str,
        typer.Option(
            "--tier",
            metavar="TIER",
            help="memory, disk, local (memory and disk together), network (Redis) or object "
            "(the S3-compatible store).",
        ),
    ] = "disk",
    plan_out: Annotated[
        Path | None,
        typer.Option("--plan-out", metavar="FILE", help="Save the plan as JSON; remove nothing."),
    ] = None,
    apply: Annotated[
        Path | None,
        typer.Option("--apply", metavar="FILE", help="Carry out a plan saved with --plan-out."),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    wait: WaitOpt = 0.0,
    wide: WideOpt = False,
) -> Report | None:
    """Remove entries by selector (AND-combined); shows the plan and asks first unless -y."""
    state = state_of(ctx)
    if tier == "object":
        others = (older_than, larger_than, to_size, keep_last, plan_out, apply)
        return _object.evict(
            state, cache, keys=list(key or ()), match=match,
            others_given=any(o is not None for o in others), dry_run=dry_run, yes=yes,
        )  # fmt: skip
    if tier == "network":
        others = (older_than, larger_than, to_size, keep_last, plan_out, apply)
        return _network.evict(
            state, cache, keys=list(key or ()), match=match,
            others_given=any(o is not None for o in others), dry_run=dry_run, yes=yes,
        )  # fmt: skip
    r = state.renderer(wide=wide)
    manager = state.manager()
    sel = evict_ops.Selectors(
        keys=tuple(key or ()),
        match=match,
        older_than=older_than,
        larger_than=larger_than,
        to_size=to_size,
        keep_last=keep_last,
    )
    if apply is not None and sel.given():
        raise UsageError("--apply FILE carries out a saved plan; give no selectors with it")
    plan = evict_ops.prepare_evict(manager, cache, sel, tier=tier, saved=apply, save_to=plan_out)
    if plan_out is not None:
        r.info(f"saved a plan of {len(plan.entries):,} entries ({size(plan.bytes)}) to {plan_out}")
    if dry_run or plan_out is not None:
        r.emit(plan, render.evict_plan_view)
        r.info(f"dry run: would remove {len(plan.entries):,} entries, {size(plan.bytes)}")
        return plan
    if not plan.entries:
        report = evict_ops.EvictReport.nothing()
        r.emit(report, render.evict_view)
        return report
    if not r.json_mode:
        render.evict_plan_view(r, plan)
    r.info(f"about to remove {len(plan.entries):,} entries, {size(plan.bytes)}")
    if not r.confirm("remove them?", yes=yes, action="evict"):
        r.info("cancelled; nothing removed")
        return None
    report = evict_ops.apply_evict(manager, plan, wait=wait)
    r.emit(report, render.evict_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("evict")(evict)
