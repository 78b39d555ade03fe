"""The seed's monitoring API: ``MonitoredCacheManager`` and ``CacheMetricsCollector``.

A ``MonitoredCacheManager`` is a CacheManager that reports its own metrics:
``await get_metrics()`` flushes this process's counters, then reads what every process
has stored for each cache, so the numbers include yesterday's training job (and any
``bench --cache`` run), not just this process. ``get_metrics(scope="process")`` counts only
this manager's own gets and puts since it opened each cache.

The seed's monitoring snippet builds a ``CacheMetricsCollector`` with no arguments inside
its own ``MonitoredCacheManager`` and awaits ``get_hit_rate()``, ``get_memory_usage()`` and
``get_eviction_count()``. Given no manager, the collector opens one on first use with the
resolved configuration (``CacheManager()``), so the snippet runs as written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llamacache.engine import metrics, metrics_store
from llamacache.engine.resources import available_memory
from llamacache.engine.tiered import TieredCache
from llamacache.errors import UsageError
from llamacache.manager import CacheManager


class MonitoredCacheManager(CacheManager):
    """A CacheManager with ``async get_metrics()`` (hit rate, memory usage, evictions, ...)."""

    async def get_metrics(self, scope: str = "lifetime") -> dict[str, Any]:
        """Metrics summed over caches (any SQLite reads run off the event loop).

        ``scope="lifetime"`` (the default): every cache that exists on disk, with the
        counters every process ever stored for it, this one's included (``stats --reset``
        zeroes them); ``scope="process"``: the caches this manager opened, with only its
        own counters since it opened each.
        Keys: ``hit_rate`` (None before the first get), ``memory_usage`` (bytes held by
        this process's memory fronts), ``eviction_count`` (disk + memory evictions),
        ``evicted_bytes``, ``gets``, ``hits``, ``misses``, ``puts``, ``ghost_hits``,
        ``available_memory`` and ``caches`` (the same per cache, plus raw counters).
        """
        return await asyncio.to_thread(self.metrics_snapshot, scope)

    def metrics_snapshot(self, scope: str = "lifetime") -> dict[str, Any]:
        """The synchronous body of ``get_metrics`` (one flush and one read per cache)."""
        if scope not in ("lifetime", "process"):
            raise UsageError(f'metrics scope {scope!r}: expected "lifetime" or "process"')
        opened = self.opened()
        names = set(opened)
        if scope == "lifetime":
            for cache in opened.values():
                if cache.metrics is not None:
                    cache.metrics.flush()
            names |= set(self.existing_names())
        per_cache: dict[str, dict[str, Any]] = {}
        for name in sorted(names):
            if scope == "lifetime":
                counters = metrics_store.read(self.settings.cache(name).path)
            else:
                counters = _own(opened[name])
            mem, disk = counters.get("memory", {}), counters.get("disk", {})
            gets = mem.get("hits", 0) + mem.get("misses", 0)
            hits = min(gets, sum(counters.get(t, {}).get("hits", 0) for t in metrics.TIERS))
            front = opened[name].memory.nbytes if name in opened else 0
            per_cache[name] = {
                "hit_rate": metrics.hit_rate(counters),
                "memory_usage": front,
                "eviction_count": disk.get("evictions", 0) + mem.get("evictions", 0),
                "evicted_bytes": disk.get("evicted_bytes", 0) + mem.get("evicted_bytes", 0),
                "gets": gets,
                "hits": hits,
                "misses": gets - hits,
                "puts": disk.get("puts", 0),
                "ghost_hits": disk.get("ghost_hits", 0),
                "counters": counters,
            }
        total = {
            k: sum(c[k] for c in per_cache.values())
            for k in ("memory_usage", "eviction_count", "evicted_bytes", "gets", "hits", "misses")
        }
        total["puts"] = sum(c["puts"] for c in per_cache.values())
        total["ghost_hits"] = sum(c["ghost_hits"] for c in per_cache.values())
        return {
            "hit_rate": total["hits"] / total["gets"] if total["gets"] else None,
            **total,
            "available_memory": available_memory(),
            "caches": per_cache,
        }


def _own(cache: TieredCache) -> metrics_store.Counters:
    """This process's counters of one open cache, shaped as ``metrics_store.read`` returns."""
    out: metrics_store.Counters = {}
    totals = cache.metrics.totals() if cache.metrics is not None else {}
    for (tier, name), value in totals.items():
        if value:  # as stored: a counter never bumped is absent
            out.setdefault(tier, {})[name] = value
    return out


class CacheMetricsCollector:
    """Reads hit rate, memory usage and evictions (lifetime counters by default)."""

    def __init__(self, manager: MonitoredCacheManager | None = None, scope: str = "lifetime"):
        self._manager = manager
        self.scope = scope

    @property
    def manager(self) -> MonitoredCacheManager:
        if self._manager is None:
            self._manager = MonitoredCacheManager()
        return self._manager

    async def get_metrics(self) -> dict[str, Any]:
        """Everything ``MonitoredCacheManager.get_metrics`` reports."""
        return await self.manager.get_metrics(self.scope)

    async def get_hit_rate(self) -> float | None:
        """Share of gets served by any tier (None before the first get)."""
        rate = (await self.get_metrics())["hit_rate"]
        return None if rate is None else float(rate)

    async def get_memory_usage(self) -> int:
        """Bytes held by this process's memory fronts."""
        return int((await self.get_metrics())["memory_usage"])

    async def get_eviction_count(self) -> int:
        """Entries evicted for room, memory and disk tiers together."""
        return int((await self.get_metrics())["eviction_count"])
