"""CacheManager: the named caches of one configuration, and their scheduled cleanup.

This is the seed's API (``CacheManager(config)``, ``get/put/remove/clear``,
``async start()``) plus ``cache(name)`` for the named caches. Caches open
lazily: building a manager touches no directory, so ``config show`` on a fresh
machine creates nothing.

``start()`` hands cleanup to an ``AsyncScheduler`` (below), a tiny asyncio scheduler that
runs a blocking job every N seconds until stopped. Jobs run in a worker thread (cleanup
does SQLite and file I/O) so the event loop of the caller's training or serving code never
blocks on disk.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llamacache.config import CacheConfig, resolve
from llamacache.config.settings import DEFAULT_CACHE, Settings
from llamacache.engine.safety import ensure_cache_root
from llamacache.errors import ConfigError

# asyncio is imported where a loop runs (it is loaded then): `import llamacache` stays light;
# the tiered stack is imported when a cache is opened, not by admin commands that read.
if TYPE_CHECKING:
    import asyncio

    from llamacache.engine.protocol import CacheTier
    from llamacache.engine.tiered import CleanupResult, TieredCache

log = logging.getLogger("llamacache.scheduler")


def _settings_from(
    config: CacheConfig | Settings | None, config_file: Path | None, env: Mapping[str, str] | None
) -> Settings:
    if config is None:
        return resolve(config_file=config_file, env=env)
    if isinstance(config, Settings):
        return config
    # "exactly that config under the default root": no config file, no environment overrides.
    return resolve(read_files=False, env=env, overrides=config.to_overrides())


class CacheManager:
    """Named tiered caches resolved from one configuration.

    ``CacheManager()`` resolves the configuration the way the CLI does (file,
    environment); ``CacheManager(CacheConfig(...))`` uses exactly that config
    under the default root. Thread-safe: caches may be used from many threads.
    """

    def __init__(
        self,
        config: CacheConfig | Settings | None = None,
        *,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = _settings_from(config, config_file, env)
        # The effective config (every field filled), as the seed's code reads it.
        self.config = CacheConfig.from_settings(self.settings)
        self.cleanup_scheduler = AsyncScheduler()
        self._caches: dict[str, TieredCache] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- named caches --

    def names(self) -> list[str]:
        """Every configured cache name, ``default`` first."""
        rest = sorted(n for n in self.settings.caches if n != DEFAULT_CACHE)
        return [DEFAULT_CACHE, *rest] if DEFAULT_CACHE in self.settings.caches else rest

    def existing_names(self) -> list[str]:
        """Configured caches that already have a directory on disk (admin commands act on these)."""
        return [n for n in self.names() if self.settings.caches[n].path.is_dir()]

    def cache(self, name: str = DEFAULT_CACHE) -> TieredCache:
        """The named cache, opened on first use (raises CacheNotFoundError for unknown names)."""
        cache = self._caches.get(name)
        if cache is not None:
            return cache
        cache_settings = self.settings.cache(name)
        with self._lock:
            cache = self._caches.get(name)
            if cache is None:
                from llamacache.engine.tiered import TieredCache

                ensure_cache_root(self.settings.root)
                cache = TieredCache(cache_settings, lower=self._lower_tiers(name))
                self._caches[name] = cache
                if name == DEFAULT_CACHE and type(self).get is CacheManager.get:
                    # the seed's m.get(key) is the default cache's get itself: a memory hit
                    # pays no extra call (bound on the instance; close() unbinds it)
                    self.get = cache.get  # type: ignore[method-assign]
        return cache

    def _lower_tiers(self, name: str) -> list[CacheTier]:
        """The shared tiers the cache opts into: Redis ([cache.network]) for small values and
        invalidation, then the object store ([cache.object]) for large immutable ones."""
        net, obj = self.settings.network, self.settings.object_store
        opts = self.settings.caches[name]
        tiers: list[CacheTier] = []
        use_obj = obj is not None and opts.object
        if net is not None and opts.network:
            try:
                from llamacache.engine.network import NetworkTier
            except ImportError as exc:  # redis is an optional extra
                raise missing_redis(exc) from None
            if use_obj:  # large values go to the object store, not into Redis's RAM
                assert obj is not None
                cap = min(net.max_value_size, obj.threshold - 1)
                net = dataclasses.replace(net, max_value_size=cap)
            tiers.append(NetworkTier(net, name))
        if use_obj:
            assert obj is not None
            try:
                from llamacache.engine.objectstore import ObjectTier
            except ImportError as exc:  # pragma: no cover - the module imports nothing optional
                raise ConfigError(str(exc)) from None
            try:
                import obstore  # noqa: F401
            except ImportError as exc:  # obstore is an optional extra
                from llamacache.engine.objectstore import missing_client

                raise missing_client(exc) from None
            tiers.append(ObjectTier(obj, name, net.keys if net is not None else ()))
        return tiers

    def opened(self) -> dict[str, TieredCache]:
        """The caches this manager has opened so far."""
        return dict(self._caches)

    # -- the seed's API on the default cache ----------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """Retrieve an item from the default cache; ``default`` (None) on a miss."""
        return self.cache().get(key, default)

    def put(self, key: Any, value: Any, ttl: float | None = None) -> None:
        """Store an item in the default cache (memory and disk, write-through)."""
        self.cache().put(key, value, ttl=ttl)

    def remove(self, key: Any) -> bool:
        """Remove an item from every tier of the default cache; True if it was there."""
        return self.cache().remove(key)

    def clear(self) -> int:
        """Remove every item of the default cache; returns how many were removed."""
        return self.cache().clear()

    # -- cleanup --

    def cleanup(self) -> dict[str, CleanupResult]:
        """Expire old entries and bring every existing cache back under its threshold."""
        results: dict[str, CleanupResult] = {}
        for name in self.existing_names():
            results[name] = self.cache(name).cleanup()
        return results

    async def start(self) -> None:
        """Start cache management tasks: each cache's cleanup at its own ``cleanup_interval``."""
        for name in self.names():
            settings = self.settings.caches[name]
            await self.cleanup_scheduler.schedule(
                functools.partial(self._cleanup_one, name),
                interval=settings.cleanup_interval,
                name=f"cleanup:{name}",
            )

    def _cleanup_one(self, name: str) -> CleanupResult | None:
        if self._closed or not self.settings.caches[name].path.is_dir():
            return None
        return self.cache(name).cleanup()

    async def stop(self) -> None:
        """Stop the scheduled tasks (a cleanup that is running finishes first)."""
        await self.cleanup_scheduler.stop()

    # -- lifecycle --

    def close(self) -> None:
        """Flush batched access times and close every opened cache."""
        with self._lock:
            caches, self._caches = list(self._caches.values()), {}
            self._closed = True
            self.__dict__.pop("get", None)
        for cache in caches:
            cache.close()

    def __enter__(self) -> CacheManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CacheManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        self.close()


def missing_redis(exc: ImportError) -> ConfigError:
    """The one message for a configured network tier without the redis package."""
    return ConfigError(
        f"cache.network.url is set but the redis package is missing ({exc}); "
        "install llamacache[network]"
    )


@dataclass
class _Job:
    name: str
    func: Callable[[], object]
    interval: float
    run_now: bool = False
    runs: int = 0
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class AsyncScheduler:
    """Runs registered jobs at fixed intervals on the running event loop."""

    def __init__(self) -> None:
        self._jobs: list[_Job] = []
        self._stopping: asyncio.Event | None = None

    @property
    def jobs(self) -> list[_Job]:
        return list(self._jobs)

    async def schedule(
        self,
        func: Callable[[], object],
        *,
        interval: float,
        name: str | None = None,
        run_now: bool = False,
    ) -> None:
        """Start running ``func`` every ``interval`` seconds: the first run after one interval,
        or at once with ``run_now`` (a daemon in a container restarted often must still run)."""
        import asyncio

        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if self._stopping is None:
            self._stopping = asyncio.Event()
        job = _Job(name or str(getattr(func, "__name__", "job")), func, interval, run_now)
        job.task = asyncio.create_task(self._loop(job), name=f"llamacache:{job.name}")
        self._jobs.append(job)

    async def _loop(self, job: _Job) -> None:
        import asyncio

        assert self._stopping is not None
        wait = not job.run_now
        while not self._stopping.is_set():
            if wait:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=job.interval)
                    return  # stop was requested while waiting
                except asyncio.TimeoutError:
                    pass
            wait = True
            try:
                await asyncio.to_thread(job.func)
                job.runs += 1
            except Exception:  # a failed run must not kill the schedule
                job.failures += 1
                log.exception("scheduled job %s failed", job.name)

    async def stop(self) -> None:
        """Stop every job; a job that is mid-run finishes its current run first."""
        import asyncio

        if self._stopping is not None:
            self._stopping.set()
        tasks = [j.task for j in self._jobs if j.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._stopping = None
