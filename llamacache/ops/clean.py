"""``clean``: what cron runs — apply every cache's configured policy at once.

Per cache, under its admin lock: entries older than ``max_age`` out, expired entries out,
the disk tier back under ``eviction_threshold`` x ``disk_size`` (the engine's
``TieredCache.cleanup``), temporary files older than an hour, orphan value files older
than ten minutes and ``model_path`` links to evicted files swept. Young orphans are left:
a concurrent writer renames its file into place just before its row commits. Then the
system cache's ``temp_dir`` is aged out.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from llamacache.engine.generation import bump_generation
from llamacache.locking import admin_lock
from llamacache.manager import CacheManager
from llamacache.ops import _index
from llamacache.ops._common import check_writable, network_warning, targets
from llamacache.ops._report import Report
from llamacache.ops._strays import dangling_snapshot_links
from llamacache.ops.evict import Selectors, plan_evict
from llamacache.ops.verify import STALE_TMP_SECONDS, find_strays
from llamacache.settings import CacheSettings

ORPHAN_MIN_AGE = 600.0


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
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CleanReport(Report):
    schema = "clean"
    dry_run: bool
    caches: tuple[CacheClean, ...]
    temp_dir: str | None
    temp_files: int
    temp_bytes: int
    freed_bytes: int
    removed: int


def _unlink(paths: list[tuple[Path, int]], root: Path) -> None:
    for p, _size in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        parent = p.parent
        while parent != root and parent.is_relative_to(root):  # prune emptied xx/yy folders
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _strays(s: CacheSettings, now: float) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    if not (s.path / _index.DB_NAME).exists():
        return [], []
    con, _ = _index.connect(s.path, cache=s.name)
    try:
        orphans, stale = find_strays(con, s.path, now, tmp_age=STALE_TMP_SECONDS, skip=s.temp_dir)
    finally:
        con.close()
    old_orphans = []
    for p in orphans:
        full = s.path / (p.path or "")
        with contextlib.suppress(FileNotFoundError):
            if now - full.lstat().st_mtime >= ORPHAN_MIN_AGE:
                old_orphans.append((full, p.size))
    old_orphans += dangling_snapshot_links(s.path)  # model_path links to evicted files
    return old_orphans, [(s.path / (p.path or ""), p.size) for p in stale]


def _one(manager: CacheManager, s: CacheSettings, dry_run: bool, now: float) -> CacheClean:
    warnings = tuple(w for w in (network_warning(s),) if w)
    limit = int(s.eviction_threshold * s.disk_size)
    aged = aged_bytes = 0
    if dry_run:
        summ_exp = summ_bytes = 0
        used = 0
        if (s.path / _index.DB_NAME).exists():
            con, _ = _index.connect(s.path, cache=s.name)
            try:
                summ = _index.summary(con, now)
                summ_exp, summ_bytes = summ.expired, summ.expired_bytes
                used = _index.used_bytes(con)
                if s.max_age is not None:
                    (aged, aged_bytes) = con.execute(
                        f"SELECT count(*), total({_index.SIZE_SQL}) FROM Cache WHERE store_time < ?"
                        " AND NOT (expire_time IS NOT NULL AND expire_time < ?)",
                        (now - s.max_age, now),
                    ).fetchone()
            finally:
                con.close()
        evict = plan_evict(manager, s.name, Selectors(to_size=str(limit) + "B"), tier="disk")
        orphans, stale = _strays(s, now)
        return CacheClean(
            s.name,
            summ_exp,
            summ_bytes,
            int(aged),
            int(aged_bytes),
            len(evict.entries),
            evict.bytes,
            len(stale),
            sum(b for _, b in stale),
            len(orphans),
            sum(b for _, b in orphans),
            used,
            limit,
            used - evict.bytes > limit,
            warnings,
        )
    check_writable(s)
    tiered = manager.cache(s.name)
    if s.max_age is not None and s.policy != "time":
        con, _ = _index.connect(s.path, cache=s.name)
        try:
            old = [
                (r.rowid, r.store_time, r.size)
                for r in _index.rows(con, "store_time < ?", (now - s.max_age,))
            ]
        finally:
            con.close()
        done, _skipped = tiered.disk.remove_rows(old)
        bump_generation(s.path)  # other processes drop their memory copies
        aged, aged_bytes = done.count, done.bytes
    result = tiered.cleanup()
    orphans, stale = _strays(s, now)
    _unlink(stale, s.path)
    _unlink(orphans, s.path)
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
        result.used_bytes,
        result.limit_bytes,
        result.over_limit,
        warnings,
    )


def clean(
    manager: CacheManager, cache: str | None = None, *, dry_run: bool = False, wait: float = 0.0
) -> CleanReport:
    """Apply every (or one) cache's policy; holds each cache's admin lock while it works.

    Raises LockBusyError (exit 3) when another clean/evict/repair holds a lock past
    ``wait`` seconds, UnsafeCacheDirError on a network filesystem without opt-in.
    """
    now = time.time()
    results: list[CacheClean] = []
    for s in targets(manager, cache):
        if not s.path.is_dir():
            continue
        if dry_run:
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
            _unlink(temp, temp_dir)
    freed = sum(
        c.expired_bytes + c.aged_out_bytes + c.evicted_bytes + c.stale_tmp_bytes + c.orphan_bytes
        for c in results
    ) + sum(b for _, b in temp)
    removed = sum(c.expired + c.aged_out + c.evicted + c.stale_tmp + c.orphans for c in results)
    return CleanReport(
        dry_run=dry_run,
        caches=tuple(results),
        temp_dir=str(temp_dir) if temp_dir is not None else None,
        temp_files=len(temp),
        temp_bytes=sum(b for _, b in temp),
        freed_bytes=freed,
        removed=removed + len(temp),
    )
