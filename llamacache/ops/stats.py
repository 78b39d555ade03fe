"""`llamacache stats`: the counters every process has flushed into each cache, and exports.

Reads each cache's ``LlcMetrics`` table (``metrics_store``) and an engine snapshot of its
index (entries and used bytes, as ``inspect`` computes them), read-only: a cache in use
by a training job can be watched without disturbing it.
``prometheus_text`` renders the same report in Prometheus' text exposition format for
node_exporter's textfile collector.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llamacache.config.settings import CacheSettings
from llamacache.engine import index, metrics, metrics_store
from llamacache.errors import CacheIOError, LlamacacheError
from llamacache.manager import CacheManager
from llamacache.ops._common import targets
from llamacache.ops._report import Report

Counters = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class CacheStats:
    """One cache's stored counters, summed over every process that used it."""

    cache: str
    path: Path
    gets: int
    hits: int
    misses: int
    hit_rate: float | None  # None before the first get
    puts: int
    evictions: int  # disk tier (memory-front evictions are in ``counters``)
    evicted_bytes: int
    expirations: int
    corrupt: int
    ghost_hits: int  # misses on recently evicted keys: hits with twice the disk size
    entries: int | None
    disk_bytes: int | None
    disk_limit: int
    get_p50: float | None  # seconds, upper bound of the histogram bucket
    get_p99: float | None
    put_p50: float | None
    put_p99: float | None
    advice: str | None
    counters: Mapping[str, Mapping[str, int]]  # tier -> name -> value, as stored


@dataclass(frozen=True)
class StatsReport(Report):
    schema = "stats"
    caches: tuple[CacheStats, ...]
    reset: bool = False  # the counters were zeroed after being read
    prometheus_file: Path | None = None


def advice(target: CacheSettings | Path) -> str | None:
    """ "N of M misses ... would have been hits with 2x the disk size", or None.

    N counts disk misses on ghost keys (recently evicted, remembered by hash); M all disk
    misses, both since the counters were last reset. None when no miss hit a ghost.
    """
    path = target.path if isinstance(target, CacheSettings) else target
    return ghost_advice(metrics_store.read(path))


def ghost_advice(counters: Counters) -> str | None:
    """The advice from stored counters (``metrics_store.read``); None without ghost hits."""
    disk = counters.get("disk", {})
    ghosts, misses = disk.get("ghost_hits", 0), disk.get("misses", 0)
    if not ghosts or not misses:
        return None
    return (
        f"{ghosts} of {misses} misses since the counters were last reset "
        f"({100 * ghosts / misses:.0f}%) would have been hits with 2x the disk size"
    )


def _disk_usage(settings: CacheSettings) -> tuple[int | None, int | None]:
    """(entries, used bytes) from one read-only index snapshot; the figures inspect shows."""
    if not index.exists(settings.path):
        return None, None
    try:
        with index.Snapshot(settings.path, cache=settings.name) as snap:
            return snap.count(), snap.used_bytes(skip=settings.temp_dir)
    except index.READ_ERRORS:
        return None, None
    except LlamacacheError:
        return None, None


def cache_stats(settings: CacheSettings) -> CacheStats:
    """The stored counters of one cache and what they add up to."""
    try:
        counters = metrics_store.read(settings.path)
    except index.ERRORS as exc:
        raise CacheIOError(f"cache {settings.name!r}: cannot read its counters: {exc}") from exc
    mem, disk = counters.get("memory", {}), counters.get("disk", {})
    gets = mem.get("hits", 0) + mem.get("misses", 0)
    hits = sum(counters.get(t, {}).get("hits", 0) for t in metrics.TIERS)
    entries, used = _disk_usage(settings)
    get_b = metrics.histogram_of(counters, "get")
    put_b = metrics.histogram_of(counters, "put")
    return CacheStats(
        cache=settings.name,
        path=settings.path,
        gets=gets,
        hits=min(hits, gets),
        misses=max(0, gets - hits),
        hit_rate=metrics.hit_rate(counters),
        puts=disk.get("puts", 0),
        evictions=disk.get("evictions", 0),
        evicted_bytes=disk.get("evicted_bytes", 0),
        expirations=disk.get("expirations", 0) + mem.get("expirations", 0),
        corrupt=sum(counters.get(t, {}).get("corrupt", 0) for t in metrics.TIERS),
        ghost_hits=disk.get("ghost_hits", 0),
        entries=entries,
        disk_bytes=used,
        disk_limit=settings.disk_size,
        get_p50=metrics.quantile(get_b, 0.5),
        get_p99=metrics.quantile(get_b, 0.99),
        put_p50=metrics.quantile(put_b, 0.5),
        put_p99=metrics.quantile(put_b, 0.99),
        advice=ghost_advice(counters),
        counters={t: dict(v) for t, v in counters.items()},
    )


def stats(
    manager: CacheManager,
    cache: str | None = None,
    *,
    reset: bool = False,
    prometheus_file: Path | None = None,
) -> StatsReport:
    """Counters of one cache, or of every cache that exists on disk.

    Flushes this process's own open caches first. With ``reset`` the counters are
    zeroed after being read (the report shows what they were). With ``prometheus_file``
    the exposition text is written there atomically (tmp file + rename). Raises
    UnsafeCacheDirError for a root or cache folder another user controls.
    """
    names = [s.name for s in targets(manager, cache)]  # refuses folders others control
    for name, opened in manager.opened().items():
        if name in names and opened.metrics is not None:
            opened.metrics.flush()
    found = tuple(cache_stats(manager.settings.cache(n)) for n in names)
    if reset:
        for st in found:
            if st.path.is_dir():
                metrics_store.reset(st.path)
    report = StatsReport(found, reset, prometheus_file)
    if prometheus_file is not None:
        write_atomic(prometheus_file, prometheus_text(report))
    return report


# -- Prometheus text exposition (format 0.0.4) ----------------------------------------------

_COUNTERS = (
    ("hits", "Gets served by this tier."),
    ("misses", "Gets this tier could not serve."),
    ("puts", "Entries stored in this tier."),
    ("evictions", "Entries evicted from this tier to make room."),
    ("evicted_bytes", "Payload bytes evicted from this tier."),
    ("expirations", "Entries removed because they expired."),
    ("corrupt", "Reads that found a damaged entry."),
    ("ghost_hits", "Misses on recently evicted keys (hits with twice the disk size)."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def prometheus_text(report: StatsReport) -> str:
    """The report as Prometheus text: counters per cache and tier, gauges, histograms."""
    out: list[str] = []
    for name, help_text in _COUNTERS:
        metric = f"llamacache_{name}_total"
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for st in report.caches:
            for tier in metrics.TIERS:
                if tier in st.counters and name in st.counters[tier]:
                    value = st.counters[tier][name]
                    out.append(f'{metric}{{cache="{_label(st.cache)}",tier="{tier}"}} {value}')
    gauges = (
        ("hit_ratio", "Share of gets served by any tier.", "hit_rate"),
        ("disk_bytes", "Bytes the cache occupies on disk.", "disk_bytes"),
        ("disk_entries", "Entries in the disk tier.", "entries"),
        ("disk_limit_bytes", "Configured disk size of the cache.", "disk_limit"),
    )
    for name, help_text, field in gauges:
        metric = f"llamacache_{name}"
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for st in report.caches:
            value = getattr(st, field)
            if value is not None:
                out.append(f'{metric}{{cache="{_label(st.cache)}"}} {_num(value)}')
    for op in ("get", "put"):
        metric = f"llamacache_{op}_latency_seconds"
        out += [
            f"# HELP {metric} Latency of {op} calls (gets sampled).",
            f"# TYPE {metric} histogram",
        ]
        for st in report.caches:
            buckets = st.counters.get(f"latency.{op}", {})
            if not buckets:
                continue
            label = f'cache="{_label(st.cache)}"'
            seen = 0
            for bound, bname in zip(
                (*metrics.BUCKETS, float("inf")), metrics.BUCKET_NAMES, strict=True
            ):
                seen += buckets.get(bname, 0)
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'{metric}_bucket{{{label},le="{le}"}} {seen}')
            out.append(f"{metric}_sum{{{label}}} {buckets.get('sum_us', 0) / 1e6!r}")
            out.append(f"{metric}_count{{{label}}} {seen}")
    return "\n".join(out) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place.

    node_exporter may read the file at any moment; it must never see half of it.
    """
    path = path.expanduser().absolute()
    try:
        import tempfile  # only when writing the file: inspect and stats never import it

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)  # the collector usually runs as another user
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise CacheIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
