"""`llamacache verify`: read-only check of indexes, files and checksums; exit 1 on any problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, options, render
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.state import state_of
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import verify as verify_ops
else:
    verify_ops = lazy("llamacache.ops.verify")


def _percent(value: str | float) -> float:
    text = str(value).strip().rstrip("%")
    try:
        n = float(text)
    except ValueError:
        n = -1.0
    if not 0 < n <= 100:
        raise typer.BadParameter(f"{value!r} is not a percentage; expected e.g. 10 or 10% (0-100]")
    return n


def verify(
    ctx: typer.Context,
    cache: CacheOpt = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Metadata and file sizes only; no hashing.")
    ] = False,
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            parser=_percent,
            metavar="PERCENT",
            help="Check a random PERCENT of entries (e.g. 10%); with --tier object, of each "
            "entry's parts.",
        ),
    ] = 100.0,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time",
            parser=options._duration,
            metavar="DURATION",
            help='Stop cleanly after this long and report what was covered, e.g. "10m".',
        ),
    ] = None,
    tier: TierOpt = "local",
    wide: WideOpt = False,
) -> Report:
    """Check SQLite integrity, files, checksums and strays; never writes. Exit 1 on a problem."""
    state = state_of(ctx)
    others = {"--quick": quick, "--sample": sample != 100.0, "--max-time": max_time is not None}
    if _object.wants_object(tier, {"--quick": quick, "--max-time": max_time is not None}):
        return _object.verify(state, cache, sample)
    if wants_network(tier, others):
        return _network.verify(state, cache)
    r = state.renderer(wide=wide)
    with r.progress("verifying", unit_bytes=not quick) as progress:
        report = verify_ops.verify(
            state.manager(), cache, quick=quick, sample=sample, max_time=max_time, progress=progress
        )
    r.emit_caches(report, render.verify_view)
    r.verdict(report)
    return report


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
