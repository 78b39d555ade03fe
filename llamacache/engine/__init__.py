"""The cache engine: framing (codec + checksum), the memory front, the disk tier, and the
tiered cache that chains them. Everything above (manager, ops, CLI) goes through here."""

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
