"""`llamacache stats`: hit rates and counters of every cache, or Prometheus text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import stats as stats_ops
else:
    stats_ops = lazy("llamacache.ops.stats")


def stats(
    ctx: typer.Context,
    cache: CacheOpt = None,
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            metavar="FILE",
            help="Write Prometheus text exposition to FILE (atomically, for node_exporter's "
            'textfile collector), or "-" for stdout.',
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Zero the stored counters after reading them.")
    ] = False,
    wide: WideOpt = False,
) -> Report:
    """Hit rate, evictions, ghost hits and latency of each cache, summed over every process."""
    state = state_of(ctx)
    if prometheus == "-" and state.json:
        raise UsageError("--json and --prometheus -: both print on stdout; choose one")
    target = None if prometheus is None or prometheus == "-" else Path(prometheus)
    report = stats_ops.stats(state.manager(), cache, reset=reset, prometheus_file=target)
    r = state.renderer(wide=wide)
    if prometheus == "-":
        r.text(stats_ops.prometheus_text(report))
    else:
        r.emit(report, render.stats_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
