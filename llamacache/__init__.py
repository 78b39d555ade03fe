"""llamacache: tiered caches for ML work (memory front, diskcache disk tier, optional Redis).

The public API::

    from llamacache import CacheManager, CacheConfig

    with CacheManager(CacheConfig(memory_size="4GB", disk_size="100GB", policy="lru")) as cm:
        cm.put("tokens:v1", batch)
        model_cache = cm.cache("model")
"""

from llamacache.config import CacheConfig
from llamacache.errors import (
    CacheIOError,
    CacheNotFoundError,
    ConfigError,
    CorruptEntryError,
    DiskFullError,
    LlamacacheError,
    LockBusyError,
    ReadOnlyCacheError,
    UnsafeCacheDirError,
)
from llamacache.manager import CacheManager
from llamacache.ml import DatasetCache, ModelCache
from llamacache.monitored import MonitoredCacheManager
from llamacache.monitoring import CacheMetricsCollector
from llamacache.resources import ResourceManager
from llamacache.scheduler import AsyncScheduler

__version__ = "0.1.0"

__all__ = [
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
    "ReadOnlyCacheError",
    "ResourceManager",
    "UnsafeCacheDirError",
    "__version__",
]
