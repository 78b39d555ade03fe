"""`llamacache daemon`: clean every cache at its cleanup_interval until SIGTERM/SIGINT."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import daemon as daemon_ops
else:
    daemon_ops = lazy("llamacache.ops.daemon")


def daemon(
    ctx: typer.Context,
    cache: CacheOpt = None,
) -> Report:
    """Run scheduled cleanup in the foreground (for containers) until SIGTERM or Ctrl-C.

    Each cache is cleaned at start, then at its own cleanup_interval; one line per run on stderr
    (--json: one JSON object per line).
    """
    state = state_of(ctx)
    manager = state.manager()
    caches = [manager.settings.cache(cache).name] if cache else None
    r = state.renderer()

    def on_run(run: daemon_ops.DaemonRunReport) -> None:
        if run.message == daemon_ops.NO_DIRECTORY:
            return  # a configured cache nobody has used yet: nothing to say every interval
        if not r.quiet or run.status == "failed":
            r.log(render.daemon_run_line(run, r.json_mode))

    def on_start() -> None:
        if not r.quiet:
            plan = ", ".join(f"{n} every {i:g}s" for n, i in daemon_ops.intervals(manager, caches))
            r.log(f"llamacache daemon: started (pid {os.getpid()}): {plan}")

    report = daemon_ops.run_until_signal(manager, on_run, caches, on_start)
    if not r.quiet:
        r.log(f"llamacache daemon: {report.stopped_by}: stopped after {report.runs} runs")
    return report


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon)
