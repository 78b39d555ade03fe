"""`llamacache verify`: read-only check of indexes, files and checksums; exit 1 on any problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llamacache.cli import _network, _object, options
from llamacache.cli._lazy import lazy
from llamacache.cli._network import TierOpt, wants_network
from llamacache.cli.options import CacheOpt, WideOpt
from llamacache.cli.render import Renderer, duration, size
from llamacache.cli.state import state
from llamacache.ops._report import Report

if TYPE_CHECKING:
    from llamacache.ops import verify as verify_ops
else:
    verify_ops = lazy("llamacache.ops.verify")


def _human(r: Renderer, rep: verify_ops.VerifyReport) -> None:
    rows = [
        (
            c.name,
            f"{c.checked:,}/{c.entries:,}",
            f"{c.verified:,}",
            f"{c.corrupt:,}",
            f"{c.missing:,}",
            f"{c.orphaned:,}",
            f"{c.stale_tmp:,}",
            "ok" if c.index_ok else "DAMAGED",
        )
        for c in rep.caches
    ]
    r.table(
        None,
        ("cache", "checked", "verified", "corrupt", "missing", "orphaned", "stale tmp", "index"),
        rows,
        right=("checked", "verified", "corrupt", "missing", "orphaned", "stale tmp"),
        wide_only=("verified", "orphaned", "stale tmp"),
    )
    for c in rep.caches:
        for p in c.problems:
            what = repr(p.key) if p.key is not None else p.path
            r.line(f"{c.name}: {p.kind}: {what}: {p.detail}")
    speed = f", {size(int(rep.bytes_per_second))}/s" if rep.checked_bytes else ""
    cover = "" if rep.complete else " (stopped by --max-time: not every entry was checked)"
    checked = sum(c.checked for c in rep.caches)
    entries = sum(c.entries for c in rep.caches)
    skipped = sum(c.skipped for c in rep.caches)
    what = f"{rep.mode} verify"
    if rep.sample_percent < 100.0:  # a sample is never reported as a full check
        what = f"{rep.sample_percent:g}% sample verify" + (
            " (quick)" if rep.mode == "quick" else ""
        )
    moved = f", {skipped:,} skipped (changed by a writer meanwhile)" if skipped else ""
    verdict = "PROBLEMS FOUND" if not rep.ok else "all good"
    if rep.ok and checked == 0 and entries > 0:
        verdict = "no entry was checked"
    r.line(
        f"{what}: checked {checked:,} of {entries:,} entries{moved}, "
        f"{size(rep.checked_bytes)} hashed in {duration(rep.seconds)}{speed}{cover}; {verdict}"
    )


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
    s = state(ctx)
    others = {"--quick": quick, "--sample": sample != 100.0, "--max-time": max_time is not None}
    if _object.wants_object(tier, {"--quick": quick, "--max-time": max_time is not None}):
        return _object.verify(s, cache, sample)
    if wants_network(tier, others):
        return _network.verify(s, cache)
    r = s.renderer(wide=wide)
    with r.progress("verifying", unit_bytes=not quick) as progress:
        report = verify_ops.verify(
            s.manager(), cache, quick=quick, sample=sample, max_time=max_time, progress=progress
        )
    r.emit_caches(report, _human)
    r.verdict(report)
    return report


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
