"""``inspect``: what is in each cache, per tier, and is it healthy — from the index alone.

Every figure comes from one engine snapshot of the index (one scan, no value file opened), the
persisted counters and one ``statvfs``, so 100,000 entries answer as fast as 1,000.
Works on a read-only cache directory and creates nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from llamacache.config.settings import CacheSettings
from llamacache.engine import index, metrics_store, quarantine, unshared
from llamacache.engine.resources import disk_limit_warning
from llamacache.manager import CacheManager
from llamacache.ops._common import network_warning, targets, unsigned_warning
from llamacache.ops._report import Report, ReportWarning
from llamacache.ops.stats import ghost_advice

COUNTERS = ("hits", "misses", "puts", "evictions", "evicted_bytes", "expirations", "corrupt")


@dataclass(frozen=True)
class EntryInfo:
    """One entry in a ``--top`` list."""

    key: str
    bytes: int
    stored: float
    accessed: float
    file: bool


@dataclass(frozen=True)
class TierInfo:
    """One tier of one cache. ``entries``/``bytes`` are None where not measurable here
    (another process's memory front)."""

    tier: str
    entries: int | None
    bytes: int | None
    limit: int
    percent_of_limit: float | None
    counters: dict[str, int]
    hit_rate: float | None  # hits / (hits + misses), None before any lookup
    oldest: float | None = None
    newest: float | None = None
    expired: int = 0
    expired_bytes: int = 0
    compression_ratio: float | None = None  # raw bytes / stored bytes


@dataclass(frozen=True)
class CacheInfo:
    name: str
    path: Path
    exists: bool
    read_only: bool  # the cache directory cannot be written (read-only mount or permissions)
    policy: str
    eviction_threshold: float
    checksum: str
    compression: str
    format: str | None
    tiers: tuple[TierInfo, ...]
    quarantined: int
    fs_free: int | None
    fs_total: int | None
    top: tuple[EntryInfo, ...]
    warnings: tuple[ReportWarning, ...]
    # "N of M misses ... would have been hits with 2x the disk size" (ghost entries)
    advice: str | None = None
    unshared: int = 0  # writes not yet on the shared tier (retried in the background)


@dataclass(frozen=True)
class InspectReport(Report):
    schema = "inspect"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    caches: tuple[CacheInfo, ...]
    generated: float


def _hit_rate(c: dict[str, int]) -> float | None:
    looked = c.get("hits", 0) + c.get("misses", 0)
    return None if looked == 0 else c.get("hits", 0) / looked


def _counters(stored: dict[str, dict[str, int]], tier: str) -> dict[str, int]:
    got = stored.get(tier, {})
    return {name: int(got.get(name, 0)) for name in COUNTERS}


def _one(manager: CacheManager, s: CacheSettings, top: int, now: float) -> CacheInfo:
    warnings: list[ReportWarning] = []
    if (w := network_warning(s)) is not None:
        warnings.append(w)
    if (w := unsigned_warning(manager.settings, s)) is not None:
        warnings.append(w)
    exists = index.exists(s.path)
    stored = metrics_store.read(s.path) if exists else {}
    disk_c = _counters(stored, "disk")
    mem_c = _counters(stored, "memory")
    read_only = False
    entries: list[EntryInfo] = []
    disk: TierInfo
    if exists:
        read_only = not os.access(s.path, os.W_OK)
        with index.Snapshot(s.path, cache=s.name) as snap:
            summ = snap.summary(now)
            used = snap.used_bytes(skip=s.temp_dir)
            for row in snap.rows(order="size", desc=True, limit=top) if top else ():
                entries.append(
                    EntryInfo(
                        row.key_text,
                        row.size,
                        row.store_time,
                        row.access_time,
                        row.filename is not None,
                    )
                )
        disk = TierInfo(
            "disk",
            summ.entries,
            used,
            s.disk_size,
            100.0 * used / s.disk_size if s.disk_size else None,
            disk_c,
            _hit_rate(disk_c),
            summ.oldest,
            summ.newest,
            summ.expired,
            summ.expired_bytes,
            summ.raw_bytes / summ.stored_bytes if summ.stored_bytes else None,
        )
    else:
        disk = TierInfo("disk", 0, 0, s.disk_size, 0.0, disk_c, _hit_rate(disk_c))
    opened = manager.opened().get(s.name)
    m_entries = m_bytes = None
    if opened is not None:  # this process's own memory front
        ms = opened.memory.stats()
        m_entries, m_bytes = ms.entries, ms.bytes
    memory = TierInfo(
        "memory",
        m_entries,
        m_bytes,
        s.memory_size,
        100.0 * m_bytes / s.memory_size if m_bytes is not None and s.memory_size else None,
        mem_c,
        _hit_rate(mem_c),
    )
    tiers = [memory, disk]
    tier_names = {t for t in stored if not t.startswith("latency.")}  # not the histograms
    for extra in sorted(tier_names - {"memory", "disk"}):  # e.g. a network tier's counters
        c = _counters(stored, extra)
        tiers.append(TierInfo(extra, None, None, 0, None, c, _hit_rate(c)))
    if (too_big := disk_limit_warning(s, disk.bytes)) is not None:
        warnings.append(ReportWarning("disk-limit", s.name, too_big))
    free = total = None
    probe = s.path if s.path.exists() else s.path.parent
    if probe.exists():
        usage = shutil.disk_usage(probe)
        free, total = usage.free, usage.total
    return CacheInfo(
        name=s.name,
        path=s.path,
        exists=exists,
        read_only=read_only,
        policy=s.policy,
        eviction_threshold=s.eviction_threshold,
        checksum=s.checksum,
        compression=s.compression,
        format=s.format,
        tiers=tuple(tiers),
        quarantined=quarantine.count(s.path),
        fs_free=free,
        fs_total=total,
        top=tuple(entries),
        warnings=tuple(warnings),
        advice=ghost_advice(stored),
        unshared=unshared.count(s.path),
    )


def inspect(
    manager: CacheManager, cache: str | None = None, *, top: int = 0, reset_stats: bool = False
) -> InspectReport:
    """Figures for one cache or every existing one; ``reset_stats`` zeroes counters after.

    Costs one SQL scan of each index (no value file is read) plus ``top`` rows by size.
    Raises CacheNotFoundError for an unknown ``cache``, CorruptEntryError for a damaged index.
    """
    now = time.time()
    infos = tuple(_one(manager, s, top, now) for s in targets(manager, cache))
    if reset_stats:
        for info in infos:
            if info.exists:
                metrics_store.reset(info.path)
    return InspectReport(caches=infos, generated=now)
