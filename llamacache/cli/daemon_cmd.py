"""`llamacache daemon`: clean every cache at its cleanup_interval until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt
from llamacache.cli.state import state_of
from llamacache.config.units import format_size
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import daemon as daemon_ops
else:
    daemon_ops = lazy("llamacache.ops.daemon")


def _line(run: daemon_ops.DaemonRunReport, as_json: bool) -> str:
    if as_json:
        return json.dumps(run.to_json())
    stamp = datetime.fromtimestamp(run.started, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{stamp} llamacache daemon: cache {run.cache!r}: {run.status}"
    if run.status != "ok":
        return f"{head} ({run.message})"
    return (
        f"{head}: expired {run.expired}, evicted {run.evicted},"
        f" freed {format_size(run.freed_bytes)},"
        f" {format_size(run.used_bytes)} used of {format_size(run.limit_bytes)}"
        f" ({run.seconds:.2f}s)"
    )


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
            r.log(_line(run, r.json_mode))

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
