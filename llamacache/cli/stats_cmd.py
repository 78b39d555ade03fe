"""`llamacache stats`: hit rates and counters of every cache, or Prometheus text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli._lazy import lazy
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.render import Renderer, size
from llamacache.cli.state import state_of
from llamacache.errors import UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import stats as stats_ops
else:
    stats_ops = lazy("llamacache.ops.stats")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _ms(seconds: float | None) -> str:
    """A histogram bucket's upper bound: the quantile is at most this."""
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "> 10 s"
    return f"<= {seconds * 1e6:g} us" if seconds < 1e-3 else f"<= {seconds * 1e3:g} ms"


def _human(r: Renderer, rep: stats_ops.StatsReport) -> None:
    if not rep.caches:
        r.info("no caches exist yet")
        return
    rows = [
        (
            st.cache,
            st.gets,
            _pct(st.hit_rate),
            st.puts,
            st.evictions,
            size(st.evicted_bytes),
            st.ghost_hits,
            st.corrupt,
            "-" if st.entries is None else st.entries,
            f"{size(st.disk_bytes)} / {size(st.disk_limit)}",
            _ms(st.get_p50),
            _ms(st.get_p99),
        )
        for st in rep.caches
    ]
    r.table(
        None,
        [
            "cache",
            "gets",
            "hit rate",
            "puts",
            "evictions",
            "evicted",
            "ghost hits",
            "corrupt",
            "entries",
            "disk used / limit",
            "get p50",
            "get p99",
        ],
        rows,
        right=["gets", "hit rate", "puts", "evictions", "evicted", "ghost hits", "corrupt"],
        wide_only=["evicted", "ghost hits", "corrupt", "entries", "get p50", "get p99"],
    )
    for st in rep.caches:
        if st.advice:
            r.info(f"{st.cache}: {st.advice}")
    if rep.reset:
        r.info("counters reset to zero")
    if rep.prometheus_file is not None:
        r.info(f"wrote {rep.prometheus_file}")


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
        r.emit(report, _human)
    return report


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
