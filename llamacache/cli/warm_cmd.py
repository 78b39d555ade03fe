"""`llamacache warm`: fill a cache (default `model`) before a job starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import DryRunOpt, WideOpt, _size
from llamacache.cli.render import size
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import warm as warm_ops
else:
    warm_ops = lazy("llamacache.ops.warm")


def warm(
    ctx: typer.Context,
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders, globs, Hugging Face hub caches (models--org--name), or "
            "s3://bucket/prefix/org/model to import a model shared through the object store.",
            show_default=False,
        ),
    ] = None,
    cache: Annotated[str, typer.Option("--cache", "-c", help="Named cache to fill.")] = "model",
    manifest: Annotated[
        list[Path] | None,
        typer.Option(
            "--manifest",
            "-m",
            metavar="PATH",
            help="A file listing paths (one per line, or JSON) relative to its folder.",
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            help='Model revision for folders/files (default "main"); hub: a ref or (short) hash.'
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Model name (default: the folder's name; a file given by itself: its name "
            "without the extension)."
        ),
    ] = None,
    page_cache: Annotated[
        bool,
        typer.Option("--page-cache", help="Also pull the cached files into the OS page cache."),
    ] = False,
    budget: Annotated[
        int | None,
        typer.Option(
            parser=_size,
            metavar="SIZE",
            help='Lower the room a warm may fill, e.g. "50GB" (default and maximum: the '
            "cache's size limit).",
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel readers.")] = 1,
    share: Annotated[
        bool,
        typer.Option(
            "--share",
            help="Then upload what the shared tier lacks (a manifest once all its files are).",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    wide: WideOpt = False,
) -> Report:
    """Copy files into a cache before a job; skip what is already cached.

    In a safetensors cache, an invalid *.safetensors file is refused (exit 2, nothing stored).

    A warm never evicts: when the files not yet cached do not fit under the cache's limit
    (or a lower --budget), nothing is stored and it exits 1 naming the setting to raise.

    With --share, a file too large to share (cache.network.max_value_size), or one the
    server refused, is warned about and the exit status is 1.

    warm s3://bucket/prefix/org/model fetches a revision (--revision, default main) that
    another machine shared, verified against its signed manifest, using [cache.object].
    """
    state = state_of(ctx)
    r = state.renderer(wide=wide)
    with r.progress("warming", unit_bytes=True) as progress:
        report = warm_ops.warm(
            state.manager(),
            cache,
            sources or [],
            manifest or [],
            revision=revision,
            name=name,
            page_cache=page_cache,
            budget=budget,
            jobs=jobs,
            dry_run=dry_run,
            share=share,
            progress=progress,
        )
    for warning in report.shared.warnings if report.shared else ():
        r.warn(warning)
    r.emit(report, render.warm_view)
    if report.stopped_at_budget:
        r.warn(over_budget_message(report))
    return report


def over_budget_message(rep: warm_ops.WarmReport) -> str:
    """One line: what did not fit, and the setting (and variable) that sizes the cache."""
    verb = "would store" if rep.dry_run else "stored"
    raise_what = f"{rep.limit_setting} ({rep.limit_env})"
    if rep.budget_given:
        raise_what = f"--budget, or {raise_what} above it"
    return (
        f"warm needs {size(rep.needed_bytes)} but cache {rep.cache!r} has "
        f"{size(rep.room_bytes)} free under its limit of {size(rep.budget)}; {verb} nothing "
        f"({rep.over_budget} files); raise {raise_what}, or free room with "
        f"'llamacache evict -c {rep.cache}'"
    )


def register(app: typer.Typer) -> None:
    app.command("warm")(warm)
