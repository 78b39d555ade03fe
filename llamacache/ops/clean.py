"""``clean``: what cron runs — apply every cache's configured policy at once.

Per cache, under its admin lock: entries older than ``max_age`` out, expired entries out,
the disk tier back under ``eviction_threshold`` x ``disk_size`` (the engine's
``TieredCache.cleanup``), temporaries (``tmp/``, killed backups' ``.tmp-PID``) and orphan
value files older than ``temp_grace`` (default 15 minutes) and not held open, and
``model_path`` links to evicted files swept, and model files no revision lists (older
than ``temp_grace``) removed. Younger ones are left: a concurrent writer
renames its file into place just before its row commits. Then the system cache's
``temp_dir`` is aged out. ``used_bytes`` is the engine's figure, as inspect and stats show it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

from llamacache.config.settings import CacheSettings
from llamacache.engine import index
from llamacache.engine.generation import bump_generation
from llamacache.engine.locking import admin_lock
from llamacache.manager import CacheManager
from llamacache.ops._common import check_writable, network_warning, no_index_warning, targets
from llamacache.ops._report import Report, ReportWarning
from llamacache.ops.evict import Selectors, plan_evict


@dataclass(frozen=True)
class CacheClean:
    name: str
    expired: int
    expired_bytes: int
    aged_out: int  # older than max_age
    aged_out_bytes: int
    evicted: int
    evicted_bytes: int
    stale_tmp: int
    stale_tmp_bytes: int
    orphans: int
    orphan_bytes: int
    used_bytes: int
    limit_bytes: int
    over_limit: bool
    warnings: tuple[ReportWarning, ...] = ()
    unlisted_blobs: int = 0  # model files no revision lists, older than temp_grace
    unlisted_blob_bytes: int = 0


@dataclass(frozen=True)
class CleanReport(Report):
    schema = "clean"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    dry_run: bool
    root: str  # the cache root cleaned (no cache folder there: nothing to clean)
    caches: tuple[CacheClean, ...]
    temp_dir: str | None
    temp_files: int
    temp_bytes: int
    freed_bytes: int
    removed: int


def _strays(s: CacheSettings, now: float) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(orphans and dead model_path links, temporaries), all older than ``temp_grace``.

    When the index cannot be read, nothing is called an orphan (every file could be one).
    """
    if not index.exists(s.path):
        return [], []
    try:
        with index.Snapshot(s.path, cache=s.name) as snap:
            orphans, stale = snap.strays(now, grace=s.temp_grace, skip=s.temp_dir)
    except index.READ_ERRORS:
        return [], []
    old = [(s.path / (p.path or ""), p.size) for p in orphans]
    old += index.dangling_snapshot_links(s.path)  # model_path links to evicted files
    return old, [(s.path / (p.path or ""), p.size) for p in stale]


def _unlisted(s: CacheSettings, now: float) -> list[tuple[str, int, float, int]]:
    """Model blobs no revision lists, stored more than ``temp_grace`` ago (a younger one
    may belong to a ``put_model`` that has not published its manifest yet), as
    ``(key, rowid, store_time, size)``. Nothing when the index cannot be read."""
    if not index.exists(s.path):
        return []
    from llamacache.ops import _models  # model revisions and blobs (imports ml)

    try:
        with index.Snapshot(s.path, cache=s.name) as snap:
            found = _models.problems(snap, now, s.temp_grace)
    except index.READ_ERRORS:
        return []
    return [
        (p.key, p.rowid, p.store_time or 0.0, p.size)
        for p in found
        if p.kind == "unreferenced" and p.key is not None and p.rowid is not None
    ]


def _used(s: CacheSettings) -> int:
    with index.Snapshot(s.path, cache=s.name) as snap:
        return snap.used_bytes(skip=s.temp_dir)


def _unindexed(s: CacheSettings) -> CacheClean:
    """A cache folder without an index: nothing swept, nothing created (dry run or not)."""
    warnings = tuple(w for w in (network_warning(s), no_index_warning(s)) if w)
    given = ("name", "limit_bytes", "over_limit", "warnings")
    zero = {f.name: 0 for f in fields(CacheClean) if f.name not in given}
    limit = index.disk_limit(s)
    return CacheClean(name=s.name, limit_bytes=limit, over_limit=False, warnings=warnings, **zero)


def _one(manager: CacheManager, s: CacheSettings, dry_run: bool, now: float) -> CacheClean:
    warnings = tuple(w for w in (network_warning(s),) if w)
    limit = index.disk_limit(s)
    aged = aged_bytes = 0
    if dry_run:
        summ_exp = summ_bytes = 0
        used = 0
        if index.exists(s.path):
            with index.Snapshot(s.path, cache=s.name) as snap:
                summ = snap.summary(now)
                summ_exp, summ_bytes = summ.expired, summ.expired_bytes
                used = snap.used_bytes(skip=s.temp_dir)
                if s.max_age is not None:
                    aged, aged_bytes = snap.aged(now - s.max_age, now)
        evict = plan_evict(manager, s.name, Selectors(to_size=str(limit) + "B"), tier="disk")
        orphans, stale = _strays(s, now)
        leftovers = sum(b for _, b in stale)
        unlisted = [r for r in _unlisted(s, now) if r[0] not in {e.key for e in evict.entries}]
        return CacheClean(
            s.name,
            summ_exp,
            summ_bytes,
            int(aged),
            int(aged_bytes),
            len(evict.entries),
            evict.bytes,
            len(stale),
            leftovers,
            len(orphans),
            sum(b for _, b in orphans),
            used,
            limit,
            used - evict.bytes - leftovers > limit,
            warnings,
            len(unlisted),
            sum(r[3] for r in unlisted),
        )
    check_writable(s)
    tiered = manager.cache(s.name)
    if s.max_age is not None and s.policy != "time":
        with index.Snapshot(s.path, cache=s.name) as snap:
            old = [
                (r.rowid, r.store_time, r.size)
                for r in snap.rows([index.Cond("store_time", "<", now - s.max_age)])
            ]
        done, _skipped = tiered.disk.remove_rows(old)
        bump_generation(s.path)  # other processes drop their memory copies
        aged, aged_bytes = done.count, done.bytes
    result = tiered.cleanup()
    orphans, stale = _strays(s, now)
    index.remove_files(stale, s.path)
    index.remove_files(orphans, s.path)
    from llamacache.ml.revisions import drop_unlisted

    blobs, blob_bytes, _kept = drop_unlisted(tiered, _unlisted(s, now))  # re-checked, locked
    if blobs:
        bump_generation(s.path)
    used = _used(s)
    return CacheClean(
        s.name,
        result.expired,
        result.expired_bytes,
        aged,
        aged_bytes,
        result.evicted,
        result.evicted_bytes,
        len(stale),
        sum(b for _, b in stale),
        len(orphans),
        sum(b for _, b in orphans),
        used,
        result.limit_bytes,
        used > result.limit_bytes,
        warnings,
        blobs,
        blob_bytes,
    )


def clean(
    manager: CacheManager, cache: str | None = None, *, dry_run: bool = False, wait: float = 0.0
) -> CleanReport:
    """Apply every (or one) cache's policy; holds each cache's admin lock while it works.

    A cache folder without an index is left untouched (a ``no-index`` warning when it
    holds files), so clean never deletes what it cannot prove is its own, and never
    creates a cache. ``dry_run`` reports exactly what the real run would do.

    Raises LockBusyError (exit 3) when another clean/evict/repair holds a lock past
    ``wait`` seconds, UnsafeCacheDirError on a network filesystem without opt-in.
    """
    now = time.time()
    results: list[CacheClean] = []
    for s in targets(manager, cache):
        if not s.path.is_dir():
            continue
        if not index.exists(s.path):  # never sweep (or create) a cache without an index
            results.append(_unindexed(s))
        elif dry_run:
            results.append(_one(manager, s, True, now))
        else:
            with admin_lock(s.path, cache=s.name, wait=wait):
                results.append(_one(manager, s, False, now))
    temp: list[tuple[Path, int]] = []
    system = manager.settings.caches.get("system")
    temp_dir = system.temp_dir if system is not None else None
    if temp_dir is not None and system is not None and system.max_age is not None:
        from llamacache.ml.system import own_temp_files

        temp = own_temp_files(temp_dir, system.max_age, now)  # our llamacache-* files only
        if not dry_run:
            index.remove_files(temp, temp_dir)
    freed = sum(
        c.expired_bytes
        + c.aged_out_bytes
        + c.evicted_bytes
        + c.stale_tmp_bytes
        + c.orphan_bytes
        + c.unlisted_blob_bytes
        for c in results
    ) + sum(b for _, b in temp)
    removed = sum(
        c.expired + c.aged_out + c.evicted + c.stale_tmp + c.orphans + c.unlisted_blobs
        for c in results
    )
    return CleanReport(
        dry_run=dry_run,
        root=str(manager.settings.root),
        caches=tuple(results),
        temp_dir=str(temp_dir) if temp_dir is not None else None,
        temp_files=len(temp),
        temp_bytes=sum(b for _, b in temp),
        freed_bytes=freed,
        removed=removed + len(temp),
    )
