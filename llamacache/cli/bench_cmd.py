"""`llamacache bench`: ops/s, latency percentiles and hit ratio of a tier under a workload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import render
from llamacache.cli._lazy import lazy
from llamacache.cli.options import DurationOpt, SizeOpt
from llamacache.cli.state import state_of
from llamacache.config import units
from llamacache.errors import ConfigError, UsageError
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import bench as bench_ops
else:
    bench_ops = lazy("llamacache.ops.bench")


def _value_sizes(text: str) -> tuple[int, int]:
    """ "10KB" or a range "1KB-100KB" (sizes drawn uniformly from it)."""
    low, sep, high = text.partition("-")
    try:
        lo = units.parse_size(low, field="--value-size")
        hi = units.parse_size(high, field="--value-size") if sep else lo
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not 0 < lo <= hi:
        raise UsageError(f"--value-size: {text!r} must be above 0 and written LOW-HIGH")
    return lo, hi


def bench(
    ctx: typer.Context,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache", "-c", help="Bench this cache (default: a temporary one, removed after)."
        ),
    ] = None,
    tier: Annotated[
        str,
        typer.Option(
            "--tier",
            help="memory, disk, local (memory and disk together), network (Redis) or object"
            " (S3-compatible store).",
        ),
    ] = "local",
    workload: Annotated[
        str, typer.Option("--workload", help="uniform | zipf | scan | mixed.")
    ] = "zipf",
    read_ratio: Annotated[
        float, typer.Option("--read-ratio", help="Share of ops that are gets (0-1).")
    ] = 0.9,
    keys: Annotated[int, typer.Option("--keys", help="Distinct keys (all stored first).")] = 10_000,
    value_size: Annotated[
        str, typer.Option("--value-size", metavar="SIZE", help='e.g. "10KB", or "1KB-100KB".')
    ] = "1KB",
    ops: Annotated[int, typer.Option("--ops", help="Ops per target.")] = 100_000,
    duration: DurationOpt = None,
    processes: Annotated[int, typer.Option("--processes", help="Worker processes.")] = 1,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Disk policy (default: the cache's).")
    ] = None,
    memory_size: SizeOpt = None,
    disk_size: SizeOpt = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Also run raw diskcache (same policy) and cachetools.LRUCache."
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Workload random seed.")] = 1,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="CSV on stdout, one row per target.")
    ] = False,
) -> Report:
    """Measure ops/s, p50/p95/p99/max latency, hit ratio and bytes/s under a workload."""
    state = state_of(ctx)
    if state.json and csv_out:
        raise UsageError("give --json or --csv, not both")
    low, high = _value_sizes(value_size)
    spec = bench_ops.BenchSpec(
        tier=tier, workload=workload, read_ratio=read_ratio, keys=keys, value_min=low,
        value_max=high, ops=None if duration is not None else ops, duration=duration,
        processes=processes, compare=compare, seed=seed,
    )  # fmt: skip
    r = state.renderer(quiet=csv_out)
    with r.progress("bench") as progress:
        report = bench_ops.bench(
            state.manager(), spec, cache=cache, policy=policy, memory_size=memory_size,
            disk_size=disk_size, progress=progress,
        )  # fmt: skip
    if csv_out:
        r.csv(bench_ops.csv_rows(report))
    else:
        r.emit(report, render.bench_view)
    return report


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
