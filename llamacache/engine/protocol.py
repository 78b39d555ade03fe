"""The small surface every storage tier below the memory front offers.

Tiers below memory move *framed* entries, ``(meta, payload)`` bytes, never Python
objects: a network tier can then store and serve values without ever unpickling, and a
hit in a lower tier backfills the tiers above it byte-for-byte.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class TierStats:
    """Counters of one tier since this process opened it, plus its current size."""

    tier: str  # "memory", "disk", "network", ...
    hits: int = 0
    misses: int = 0
    puts: int = 0
    evictions: int = 0
    evicted_bytes: int = 0
    corrupt: int = 0
    entries: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class EvictionResult:
    """What one eviction or expiry pass removed (``bytes`` counts stored payload bytes)."""

    count: int = 0
    bytes: int = 0

    def __add__(self, other: EvictionResult) -> EvictionResult:
        return EvictionResult(self.count + other.count, self.bytes + other.bytes)


class ChunkMissing(Exception):
    """A streamed read found part of a value missing or damaged: the read is a miss."""


@runtime_checkable
class CacheTier(Protocol):
    """A tier that stores framed entries: the disk tier and the network (Redis) tier."""

    name: str

    def get(self, key: Hashable) -> tuple[bytes, bytes] | None:
        """``(meta, payload)`` for ``key``, or None on a miss."""
        ...

    def put(
        self, key: Hashable, meta: bytes, payload: bytes, expire: float | None = None
    ) -> bool | None:
        """Store a framed entry; ``expire`` is seconds from now (None: no expiry).

        A shared tier returns False when the value did not reach it (the cache retries).
        """
        ...

    def remove(self, key: Hashable) -> bool:
        """Remove ``key``; True if it was present."""
        ...

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        ...

    def stats(self) -> TierStats:
        """Counters and size of this tier."""
        ...


# What ``SharedTier.probe`` answers besides the record's meta bytes.
DELETED = "deleted"  # removed by someone (a deletion mark is there): drop local copies
ABSENT = "absent"  # no record (never shared, expired or evicted): local copies stay
UNKNOWN = "unknown"  # unreachable, an error reply, not a record: cannot tell


@runtime_checkable
class SharedTier(CacheTier, Protocol):
    """A tier other machines write to (Redis): local copies of its entries can go stale."""

    def probe(self, key: Hashable, ours: bytes | None = None) -> bytes | str:
        """The shared record's entry meta (a small read), or DELETED / ABSENT / UNKNOWN;
        ABSENT for a copy (header ``ours``) of the value that withdrew the shared one."""
        ...

    def listening(self, within: float) -> bool:
        """True while invalidations are being received (all published up to ``within`` s ago)."""
        ...

    def shareable(self, meta: bytes) -> bool:
        """False for values this tier keeps out on purpose (too large, unsigned pickle)."""
        ...

    def available(self) -> bool:
        """False while writes are known to fail (the write breaker is open)."""
        ...

    def withdraw(self, key: Hashable, meta: bytes) -> None:
        """The key now holds a value this tier does not take: drop the shared one and tell
        every listener (a deletion mark plus an invalidation)."""
        ...

    def takes_size(self, nbytes: int) -> bool:
        """True when a value of ``nbytes`` is within what this tier shares (max_value_size)."""
        ...


def put_stored(
    tier: Any,
    key: Hashable,
    meta: bytes,
    path: Path | None,
    inline: bytes | None,
    only_if_absent: bool = False,
) -> bool:
    """Share an entry as the disk tier holds it through ``tier`` (Redis or the object
    store): its value file streamed with ``put_file``, or its inline bytes with ``put``."""
    if path is not None:
        with open(path, "rb") as f:
            return bool(tier.put_file(key, meta, f, None, only_if_absent=only_if_absent))
    return bool(tier.put(key, meta, inline or b"", None, only_if_absent=only_if_absent))
