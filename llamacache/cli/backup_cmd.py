"""`llamacache backup` / `llamacache restore`: snapshot caches to a .tar.zst and back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, WaitOpt, complete_cache_names
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import backup as backup_ops
    from llamacache.ops import restore as restore_ops
else:
    backup_ops = lazy("llamacache.ops.backup")
    restore_ops = lazy("llamacache.ops.restore")


def backup(
    ctx: typer.Context,
    to: Annotated[
        Path,
        typer.Option("--to", metavar="FILE", help="The archive to write, e.g. caches.tar.zst."),
    ],
    cache: CacheOpt = None,
) -> Report:
    """Write a consistent, checksummed snapshot of caches to FILE.tar.zst (every cache by default).

    Safe while other processes use the caches; exit 1 when a corrupt entry had to be left out.
    """
    state = state_of(ctx)
    r = state.renderer()
    with r.progress("backup") as bar:
        report = backup_ops.backup(state.manager(), to, cache=cache, progress=bar)
    r.emit(report, render.backup_view)
    return report


def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="FILE", help="A backup written by backup.")],
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="NAME",
            help="Restore the (one) archived cache as NAME.",
            autocompletion=complete_cache_names,
        ),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            "-c",
            help="Restore only this cache from the archive.",
            autocompletion=complete_cache_names,
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Add to the existing cache (default).")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Swap in a cache holding exactly the archive, atomically."),
    ] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Also restore pickled values and keys (they run code when loaded): "
            "only for archives you trust.",
        ),
    ] = False,
    max_entries: Annotated[
        int,
        typer.Option(
            "--max-entries", metavar="N", min=0, help="Refuse archives listing more entries."
        ),
    ] = 1_000_000,
    wait: WaitOpt = 0.0,
) -> Report:
    """Verify every checksum in FILE, then restore it; nothing is written if any check fails."""
    if merge and replace:
        raise UsageError("--merge and --replace exclude each other")
    state = state_of(ctx)
    r = state.renderer()
    with r.progress("restore") as bar:
        report = restore_ops.restore(
            state.manager(),
            archive,
            cache=cache,
            into=into,
            mode="replace" if replace else "merge",
            wait=wait,
            progress=bar,
            allow_pickle=allow_pickle,
            max_entries=max_entries,
        )
    r.emit(report, render.restore_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
