"""The seed's ``CacheMetricsCollector``: async accessors over a manager's metrics.

The seed's monitoring snippet builds one with no arguments inside its own
``MonitoredCacheManager`` and awaits ``get_hit_rate()``, ``get_memory_usage()`` and
``get_eviction_count()``. Given no manager, the collector opens one on first use
with the resolved configuration (``CacheManager()``), so the snippet runs as written.
"""

from __future__ import annotations

from typing import Any

from llamacache.monitored import MonitoredCacheManager


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
