"""`llamacache bench`: measure a cache the way redis-benchmark measures a server.

A workload (uniform, zipf, scan or mixed keys; a read ratio) runs against one tier of a
cache — by default a temporary copy of the default cache's settings that is removed
afterwards — and, with ``compare``, against raw diskcache with the same policy and
cachetools.LRUCache in the same run, so the ratios are measured under the same load.
Every op is timed (perf_counter, ~0.1 us, the same overhead for every target).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from llamacache.config.settings import POLICIES, CacheSettings
from llamacache.errors import OptionError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops import _bench_targets as bt
from llamacache.ops._common import canonical_tier
from llamacache.ops._report import Report

Progress = Callable[[int, int | None], None]
BATCH = 1024  # ops generated and reported per step


@dataclass(frozen=True)
class BenchSpec:
    tier: str = "local"
    workload: str = "zipf"
    read_ratio: float = 0.9
    keys: int = 10_000
    value_min: int = 1024
    value_max: int = 1024
    ops: int | None = 100_000
    duration: float | None = None  # seconds; replaces ops when set
    processes: int = 1
    compare: bool = False
    seed: int = 1

    def check(self) -> None:
        """UsageError naming the first bad value."""
        if self.tier not in bt.TIERS:
            raise OptionError("tier", f"{self.tier!r} is not one of {', '.join(bt.TIERS)}")
        if self.workload not in bt.WORKLOADS:
            raise OptionError(
                "workload", f"{self.workload!r} is not one of {', '.join(bt.WORKLOADS)}"
            )
        if not 0.0 <= self.read_ratio <= 1.0:
            raise OptionError("read_ratio", f"{self.read_ratio} is not between 0 and 1")
        if self.keys < 1:
            raise OptionError("keys", f"{self.keys} must be at least 1")
        if not 0 < self.value_min <= self.value_max:
            raise OptionError("value_size", "must be above 0 (a range is written LOW-HIGH)")
        if self.duration is None and (self.ops is None or self.ops < 1):
            raise OptionError("ops", "must be at least 1 (or give duration)", also=("duration",))
        if self.duration is not None and self.duration <= 0:
            raise OptionError("duration", "must be above 0")
        if self.processes < 1:
            raise OptionError("processes", f"{self.processes} must be at least 1")


@dataclass(frozen=True)
class BenchResult:
    """One target's figures; latencies in seconds."""

    target: str
    kind: str
    ops: int
    seconds: float
    ops_per_s: float
    p50: float
    p95: float
    p99: float
    max: float
    reads: int
    hits: int
    hit_ratio: float | None
    bytes_per_s: float


@dataclass(frozen=True)
class BenchReport(Report):
    schema = "bench"
    cache: str | None  # None: a temporary cache, removed afterwards
    policy: str
    memory_size: int
    disk_size: int
    spec: BenchSpec
    results: tuple[BenchResult, ...]
    ratios: dict[str, float] = field(default_factory=dict)  # "ours / baseline" -> ops/s ratio


@dataclass(frozen=True)
class _Job:
    kind: str
    settings: CacheSettings
    shared: bt.SharedTiers
    scratch: Path
    spec: BenchSpec
    ops: int | None
    seed: int
    fill: bool


class _Raw(NamedTuple):
    """One process's figures for one target (latencies as packed doubles)."""

    label: str
    ops: int
    seconds: float
    reads: int
    hits: int
    moved: int
    latencies: bytes


def _run_job(job: _Job, tick: Callable[[int], None]) -> _Raw:
    """Build, optionally fill, then drive one target; returns raw figures + latencies."""
    spec = job.spec
    rng = random.Random(job.seed)
    pool = bt.values(spec.value_min, spec.value_max, random.Random(spec.seed))
    target = bt.build(job.kind, job.settings, job.shared, job.scratch)
    try:
        if job.fill:
            for i in range(spec.keys):
                target.put(bt.bench_key(i), pool[i % len(pool)])
        lat = array("d")
        get, put, clock = target.get, target.put, time.perf_counter
        done = reads = hits = moved = 0
        deadline = None if spec.duration is None else clock() + spec.duration
        start = clock()
        while (job.ops is None or done < job.ops) and (deadline is None or clock() < deadline):
            n = BATCH if job.ops is None else min(BATCH, job.ops - done)
            idx = bt.key_indices(spec.workload, spec.keys, n, rng, done)
            kinds = [rng.random() < spec.read_ratio for _ in range(n)]
            for i, is_read in zip(idx, kinds, strict=True):
                key = bt.bench_key(i)
                value = pool[i % len(pool)]
                t0 = clock()
                if is_read:
                    hit = get(key)
                    lat.append(clock() - t0)
                    reads += 1
                    if hit:
                        hits += 1
                        moved += len(value)
                else:
                    put(key, value)
                    lat.append(clock() - t0)
                    moved += len(value)
            done += n
            tick(n)
        seconds = clock() - start
        return _Raw(target.label, done, seconds, reads, hits, moved, lat.tobytes())
    finally:
        target.close()


def _worker(job: _Job, counter: Any, results: Any) -> None:
    def tick(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    results.put(_run_job(job, tick))


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def _measure(
    kind: str, settings: CacheSettings, shared: bt.SharedTiers, scratch: Path,
    spec: BenchSpec, progress: Progress,
) -> BenchResult:  # fmt: skip
    total = None if spec.duration is not None else spec.ops
    if spec.processes == 1:
        job = _Job(kind, settings, shared, scratch, spec, spec.ops, spec.seed, True)
        seen = 0

        def tick(n: int) -> None:
            nonlocal seen
            seen += n
            progress(seen, total)

        parts = [_run_job(job, tick)]
    else:
        if bt.shared(kind):  # fill once; the workers share the stored data
            _run_job(_Job(kind, settings, shared, scratch, spec, 0, 0, True), lambda n: None)
        parts = _run_processes(kind, settings, shared, scratch, spec, progress, total)
    lat = array("d")
    for part in parts:
        lat.frombytes(part.latencies)
    ops = sum(p.ops for p in parts)
    seconds = max(p.seconds for p in parts) or 1e-9
    reads, hits, moved = (sum(p.reads for p in parts), sum(p.hits for p in parts),
                          sum(p.moved for p in parts))  # fmt: skip
    ordered = sorted(lat)
    return BenchResult(
        target=parts[0].label,
        kind=kind,
        ops=ops,
        seconds=seconds,
        ops_per_s=ops / seconds,
        p50=_pct(ordered, 0.50),
        p95=_pct(ordered, 0.95),
        p99=_pct(ordered, 0.99),
        max=ordered[-1] if ordered else 0.0,
        reads=reads,
        hits=hits,
        hit_ratio=hits / reads if reads else None,
        bytes_per_s=moved / seconds,
    )


def _run_processes(
    kind: str, settings: CacheSettings, shared: bt.SharedTiers, scratch: Path,
    spec: BenchSpec, progress: Progress, total: int | None,
) -> list[_Raw]:  # fmt: skip
    ctx = mp.get_context("spawn")  # never fork a process holding SQLite connections
    counter = ctx.Value("q", 0)
    results = ctx.Queue()
    share = None if spec.ops is None else max(1, spec.ops // spec.processes)
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                _Job(
                    kind,
                    settings,
                    shared,
                    scratch,
                    spec,
                    share,
                    spec.seed + w,
                    not bt.shared(kind),
                ),
                counter,
                results,
            ),
            daemon=True,
        )  # fmt: skip
        for w in range(spec.processes)
    ]
    for p in procs:
        p.start()
    parts: list[_Raw] = []
    try:
        while len(parts) < len(procs):
            try:
                parts.append(results.get(timeout=0.1))
            except Exception:  # queue.Empty: no result yet
                if not any(p.is_alive() for p in procs) and results.empty():
                    raise UsageError(f"bench: a worker process died ({kind})") from None
            progress(counter.value, total)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    return parts


def bench(
    manager: CacheManager,
    spec: BenchSpec,
    *,
    cache: str | None = None,
    policy: str | None = None,
    memory_size: int | None = None,
    disk_size: int | None = None,
    progress: Progress = lambda done, total: None,
    on_target: Callable[[str], None] = lambda label: None,
) -> BenchReport:
    """Run ``spec`` against the chosen tier (and the baselines when ``spec.compare``).

    Writes into cache ``cache`` when given (removing its bench keys afterwards), else into
    a temporary cache removed at the end. Raises UsageError on bad input before writing.
    """
    spec = replace(spec, tier=canonical_tier(spec.tier))  # "tiered": the older name of local
    spec.check()
    if policy is not None and policy not in POLICIES:
        raise OptionError("policy", f"{policy!r} is not one of {', '.join(POLICIES)}")
    base = manager.settings.cache(cache or "default")
    shared = bt.SharedTiers(manager.settings.network, manager.settings.object_store)
    bt.check_shared(spec.tier, shared, base.name)  # fail early, before anything is written
    changes: dict[str, Any] = {}
    if policy is not None:
        changes["policy"] = policy
    if memory_size is not None:
        changes["memory_size"] = memory_size
    if disk_size is not None:
        changes["disk_size"] = disk_size
    if changes.get("policy", base.policy) == "time" and base.max_age is None:
        changes["max_age"] = 3600.0
    scratch = Path(tempfile.mkdtemp(prefix="llamacache-bench-"))
    settings = replace(base, **changes)
    if cache is None:
        settings = bt.scratch_settings(settings, scratch)
    kinds = [spec.tier]
    if spec.compare:
        if spec.tier in ("disk", "local", "network", "object"):
            kinds.append("diskcache")
        kinds += [k for k in ("memory", "cachetools") if k not in kinds]
    results = []
    try:
        for kind in kinds:
            on_target(kind)
            results.append(_measure(kind, settings, shared, scratch, spec, progress))
            # shared stores outlive the scratch folder: what bench wrote there goes too
            if kind in ("network", "object") or (cache is not None and kind in ("disk", "local")):
                target = bt.build(kind, settings, shared, scratch)
                try:
                    bt.remove_bench_keys(target, range(spec.keys))
                finally:
                    target.close()
    finally:
        bt.remove_scratch(scratch)
    return BenchReport(
        cache=cache,
        policy=settings.policy,
        memory_size=settings.memory_size,
        disk_size=settings.disk_size,
        spec=spec,
        results=tuple(results),
        ratios=_ratios(results),
    )


def _ratios(results: list[BenchResult]) -> dict[str, float]:
    by = {r.kind: r for r in results}
    out = {}
    for ours, base in (
        ("local", "diskcache"), ("disk", "diskcache"), ("network", "diskcache"),
        ("object", "diskcache"),
        ("memory", "cachetools"),
    ):  # fmt: skip
        if ours in by and base in by and by[base].ops_per_s:
            out[f"{by[ours].target} / {by[base].target}"] = by[ours].ops_per_s / by[base].ops_per_s
    return out


CSV_FIELDS = (
    "target", "kind", "ops", "seconds", "ops_per_s", "p50", "p95", "p99", "max", "reads",
    "hits", "hit_ratio", "bytes_per_s",
)  # fmt: skip


def csv_rows(report: BenchReport) -> list[list[object]]:
    """Header + one row per target, raw units (seconds, bytes/s)."""
    rows: list[list[object]] = [list(CSV_FIELDS)]
    for r in report.results:
        rows.append(["" if getattr(r, f) is None else getattr(r, f) for f in CSV_FIELDS])
    return rows
