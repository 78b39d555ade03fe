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
from llamacache.monitored import MonitoredCacheManager
from llamacache.resources import ResourceManager
from llamacache.scheduler import AsyncScheduler

__version__ = "0.1.0"

__all__ = [
    "AsyncScheduler",
    "CacheConfig",
    "CacheIOError",
    "CacheManager",
    "CacheNotFoundError",
    "ConfigError",
    "CorruptEntryError",
    "DiskFullError",
    "LlamacacheError",
    "LockBusyError",
    "MonitoredCacheManager",
    "ReadOnlyCacheError",
    "ResourceManager",
    "UnsafeCacheDirError",
    "__version__",
]
