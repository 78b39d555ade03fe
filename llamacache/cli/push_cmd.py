"""`llamacache push`: upload what the shared (Redis) tier lacks from this machine's disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import push as push_ops
else:
    push_ops = lazy("llamacache.ops.push")


def push(
    ctx: typer.Context,
    keys: Annotated[list[str] | None, typer.Argument(metavar="KEYS", help="Keys to push.")] = None,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Push every entry the shared tier lacks.")
    ] = False,
    cache: CacheOpt = None,
) -> Report:
    """Upload entries the shared tier lacks (after a flush, a restart, expiry or eviction).

    Never overwrites other content or resurrects a delete. Model manifests go last,
    and only when all their files are shared. Exit 1 when something could not be shared.
    """
    state = state_of(ctx)
    r = state.renderer()
    with r.progress("push") as bar:
        report = push_ops.push(
            state.manager(), tuple(keys or ()), cache=cache, all_keys=all_keys, progress=bar
        )
    r.emit_caches(report, render.push_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("push")(push)
