"""The cache engine: framing (codec + checksum), the memory front, the disk tier, and the
tiered cache that chains them. Everything above (manager, ops, CLI) goes through here.

Names are loaded on first use, so importing one engine module (``engine.index``,
``engine.metrics_store``) does not import the whole tiered stack with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llamacache.engine.disk import DiskTier
    from llamacache.engine.framing import (
        EntryMeta,
        check_key,
        decode,
        encode,
        parse_meta,
        verify_payload,
    )
    from llamacache.engine.memory import MemoryFront
    from llamacache.engine.protocol import CacheTier, EvictionResult, TierStats
    from llamacache.engine.safety import ensure_cache_root
    from llamacache.engine.tiered import CleanupResult, TieredCache

_HOME = {
    "DiskTier": "disk",
    "EntryMeta": "framing",
    "check_key": "framing",
    "decode": "framing",
    "encode": "framing",
    "parse_meta": "framing",
    "verify_payload": "framing",
    "MemoryFront": "memory",
    "CacheTier": "protocol",
    "EvictionResult": "protocol",
    "TierStats": "protocol",
    "ensure_cache_root": "safety",
    "CleanupResult": "tiered",
    "TieredCache": "tiered",
}

__all__ = [
    "CacheTier",
    "CleanupResult",
    "DiskTier",
    "EntryMeta",
    "EvictionResult",
    "MemoryFront",
    "TierStats",
    "TieredCache",
    "check_key",
    "decode",
    "encode",
    "ensure_cache_root",
    "parse_meta",
    "verify_payload",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'llamacache.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llamacache.engine.{home}"), name)
