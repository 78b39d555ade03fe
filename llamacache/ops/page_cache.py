"""How much of each cache's file entries is in the OS page cache (``inspect --page-cache``).

A model served from the page cache is mapped in microseconds; one that is not is read from
disk at first touch. Residency is measured with ``mincore`` on the value files, never by
reading them, over the largest ``sample`` file entries of each cache (the ones that cost
most to miss); the report says when it sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamacache.manager import CacheManager
from llamacache.ops import _pagecache
from llamacache.ops import ls as ls_ops
from llamacache.ops._common import targets
from llamacache.ops._report import Report

DEFAULT_SAMPLE = 1000


@dataclass(frozen=True)
class CacheResidency:
    cache: str
    files: int  # file entries measured
    file_bytes: int  # their size
    resident_bytes: int | None  # of those bytes, in the page cache (None: unmeasurable)
    sampled: bool  # True when the cache has more file entries than were measured


@dataclass(frozen=True)
class PageCacheReport(Report):
    schema = "page-cache"
    caches: tuple[CacheResidency, ...]
    available: bool
    reason: str | None = None


def residency(
    manager: CacheManager, cache: str | None = None, *, sample: int = DEFAULT_SAMPLE
) -> PageCacheReport:
    """Page-cache residency of the ``sample`` largest file entries of each existing cache.

    Costs one index query per cache, one index row lookup and one ``mincore`` per file (no
    file is read, so measuring does not warm anything).
    """
    out = []
    for s in targets(manager, cache):
        if not s.path.exists():
            continue
        listing = ls_ops.ls(manager, s.name, sort="size:desc", limit=None)
        files = [e for e in listing.entries if e.file][:sample]
        sampled = sum(1 for e in listing.entries if e.file) > len(files)
        tier = manager.cache(s.name).disk
        paths = []
        for e in files:
            found = tier.describe(e.key)
            if found is not None and found.path is not None:
                paths.append(found.path)
        size = sum(p.stat().st_size for p in paths if p.exists())
        resident = _pagecache.residency(p for p in paths if p.exists())
        out.append(CacheResidency(s.name, len(paths), size, resident, sampled))
    return PageCacheReport(
        caches=tuple(out),
        available=_pagecache.UNAVAILABLE_REASON is None,
        reason=_pagecache.UNAVAILABLE_REASON,
    )
