"""llamacache: tiered caches for ML work (memory front, diskcache disk tier, optional Redis).

The public API::

    from llamacache import CacheManager, CacheConfig

    with CacheManager(CacheConfig(memory_size="4GB", disk_size="100GB", policy="lru")) as cm:
        cm.put("tokens:v1", batch)
        model_cache = cm.cache("model")

Names are imported on first use (PEP 562), so ``llamacache --version`` and commands that
need only part of the package do not pay for numpy, psutil, asyncio or the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "ArchiveError": "llamacache.errors",
    "AsyncScheduler": "llamacache.manager",
    "CacheConfig": "llamacache.config",
    "CacheIOError": "llamacache.errors",
    "CacheManager": "llamacache.manager",
    "CacheMetricsCollector": "llamacache.monitoring",
    "CacheNotFoundError": "llamacache.errors",
    "ConfigError": "llamacache.errors",
    "CorruptEntryError": "llamacache.errors",
    "DatasetCache": "llamacache.ml",
    "DiskFullError": "llamacache.errors",
    "LlamacacheError": "llamacache.errors",
    "LockBusyError": "llamacache.errors",
    "ModelCache": "llamacache.ml",
    "MonitoredCacheManager": "llamacache.monitoring",
    "NetworkTierError": "llamacache.errors",
    "NotCachedError": "llamacache.errors",
    "OptionError": "llamacache.errors",
    "ReadOnlyCacheError": "llamacache.errors",
    "ResourceManager": "llamacache.engine.resources",
    "SafetensorsError": "llamacache.errors",
    "StaleEntryError": "llamacache.errors",
    "UnsafeCacheDirError": "llamacache.errors",
    "UsageError": "llamacache.errors",
}

__all__ = [
    "ArchiveError",
    "AsyncScheduler",
    "CacheConfig",
    "CacheIOError",
    "CacheManager",
    "CacheMetricsCollector",
    "CacheNotFoundError",
    "ConfigError",
    "CorruptEntryError",
    "DatasetCache",
    "DiskFullError",
    "LlamacacheError",
    "LockBusyError",
    "ModelCache",
    "MonitoredCacheManager",
    "NetworkTierError",
    "NotCachedError",
    "OptionError",
    "ReadOnlyCacheError",
    "ResourceManager",
    "SafetensorsError",
    "StaleEntryError",
    "UnsafeCacheDirError",
    "UsageError",
    "__version__",
]
assert sorted(_EXPORTS) == __all__[:-1]

if TYPE_CHECKING:
    from llamacache.config import CacheConfig
    from llamacache.engine.resources import ResourceManager
    from llamacache.errors import (
        ArchiveError,
        CacheIOError,
        CacheNotFoundError,
        ConfigError,
        CorruptEntryError,
        DiskFullError,
        LlamacacheError,
        LockBusyError,
        NetworkTierError,
        NotCachedError,
        OptionError,
        ReadOnlyCacheError,
        SafetensorsError,
        StaleEntryError,
        UnsafeCacheDirError,
        UsageError,
    )
    from llamacache.manager import AsyncScheduler, CacheManager
    from llamacache.ml import DatasetCache, ModelCache
    from llamacache.monitoring import CacheMetricsCollector, MonitoredCacheManager


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llamacache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # next time, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
