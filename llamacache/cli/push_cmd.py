"""`llamacache push`: upload what the shared (Redis) tier lacks from this machine's disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt
from llamacache.cli.render import Renderer, size
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import push as push_ops
else:
    push_ops = lazy("llamacache.ops.push")


def _human(r: Renderer, rep: push_ops.PushReport) -> None:
    r.table(
        None,
        ["cache", "checked", "pushed", "bytes", "present", "differs", "deleted", "too large"],
        [
            (
                c.name,
                c.checked,
                c.pushed,
                size(c.pushed_bytes),
                c.present,
                c.differs,
                c.deleted,
                len(c.too_large),
            )
            for c in rep.caches
        ],
        right=["checked", "pushed", "bytes", "present", "differs", "deleted", "too large"],
    )
    for c in rep.caches:
        for key in c.failed:
            r.warn(f"cache {c.name!r}: {key!r} could not be pushed (server unreachable?)")


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
    r.emit_caches(report, _human)
    return report


def register(app: typer.Typer) -> None:
    app.command("push")(push)
