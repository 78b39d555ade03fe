"""The original specification's Python snippets, run as written but for the import paths."""

from __future__ import annotations

import asyncio

from llamacache import (
    AsyncScheduler,
    CacheConfig,
    CacheManager,
    CacheMetricsCollector,
    DatasetCache,
    ResourceManager,
)


def test_automatic_cleanup_snippet() -> None:
    """The seed: `schedule(self.cleanup, interval=self.config.cleanup_interval)`."""

    class SeedManager(CacheManager):
        async def start(self) -> None:
            await self.cleanup_scheduler.schedule(
                self.cleanup, interval=self.config.cleanup_interval
            )

    async def main() -> None:
        manager = SeedManager(CacheConfig(memory_size="4GB", disk_size="100GB"))
        assert isinstance(manager.cleanup_scheduler, AsyncScheduler)
        assert manager.config.cleanup_interval == 3600.0  # the default in force
        await manager.start()
        await manager.stop()
        manager.close()

    asyncio.run(main())


def test_monitoring_snippet() -> None:
    class MonitoredCacheManager(CacheManager):
        def __init__(self, config: CacheConfig):
            super().__init__(config)
            self.metrics = CacheMetricsCollector()

        async def get_metrics(self) -> dict[str, object]:
            return {
                "hit_rate": await self.metrics.get_hit_rate(),
                "memory_usage": await self.metrics.get_memory_usage(),
                "eviction_count": await self.metrics.get_eviction_count(),
            }

    manager = MonitoredCacheManager(CacheConfig(memory_size="1GB"))
    manager.put("a", b"1")
    assert manager.get("a") == b"1" and manager.get("b") is None
    manager.close()  # flushes the counters the collector's own manager reads
    metrics = asyncio.run(manager.get_metrics())
    assert metrics["hit_rate"] == 0.5
    assert metrics["eviction_count"] == 0 and isinstance(metrics["memory_usage"], int)


def test_resource_snippet() -> None:
    async def main() -> None:
        async with ResourceManager() as resources:
            cache_size = await resources.get_available_memory() * 0.3  # 30% of available memory
            cache_config = CacheConfig(memory_size=cache_size)
            cache = CacheManager(cache_config)
            assert 0 < cache.settings.cache("default").memory_size <= cache_size
            cache.close()

    asyncio.run(main())


def test_api_reference_and_dataset_snippets() -> None:
    config = CacheConfig(memory_size="4GB", disk_size="100GB", policy="lru", eviction_threshold=0.9)
    cache_manager = CacheManager(config)
    cache_manager.put("k", {"v": 1})
    assert cache_manager.get("k") == {"v": 1}
    cache_manager.remove("k")
    assert cache_manager.get("k") is None
    cache_manager.clear()
    cache_manager.close()

    cache = DatasetCache()
    dataset = [{"x": i} for i in range(10)]
    key = cache.cache_dataset(dataset, preprocess_fn=None)
    assert list(cache.get_dataset(key)) == dataset
    first = list(cache.stream_dataset(dataset))  # batches of 32 records, collated by field
    assert first == [{"x": list(range(10))}]
    assert list(cache.stream_dataset(dataset)) == first  # the second epoch, from the cache
