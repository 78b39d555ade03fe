"""Builders for caches with a network tier on the test's redis server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from llamacache.config.settings import CacheSettings, NetworkSettings
from llamacache.engine.network import NetworkTier
from llamacache.engine.tiered import TieredCache

MB = 1024 * 1024


def net_settings(url: str, prefix: str | None = None, **kw: Any) -> NetworkSettings:
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}:"
    kw.setdefault("chunk_size", 1 * MB)
    return NetworkSettings(url=url, key_prefix=prefix, **kw)


def tiered(
    path: Path,
    net: NetworkSettings,
    name: str = "default",
    on_corrupt: str = "raise",
    **tier_kw: Any,
) -> TieredCache:
    """A cache with its own directory (a "machine") over the shared server."""
    settings = CacheSettings(
        name=name,
        path=path,
        disk_size=2_000 * MB,
        memory_size=200 * MB,
        durability="none",
        on_corrupt=on_corrupt,
    )
    tier_kw.setdefault("retry_interval", 0.5)
    return TieredCache(settings, lower=[NetworkTier(net, name, **tier_kw)])


def network_of(cache: TieredCache) -> NetworkTier:
    tier = cache.lower[0]
    assert isinstance(tier, NetworkTier)
    return tier
