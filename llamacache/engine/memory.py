"""The in-process memory front: a map bounded by bytes and by item count, in the cache's policy.

One ``threading.Lock`` guards every write; a plain hit takes no lock (see ``get``), so
it costs a dict lookup, a ``move_to_end`` and an increment. Sizes are kept in a side
dict touched only by ``put``/eviction, keeping the hit path to the one OrderedDict.

It evicts in the same order as the cache's disk tier (``lru``: least recent; ``fifo`` and
``time``: oldest stored; ``lfu``: fewest hits, then least recent; ``size``: largest), and
starts at the same ``eviction_threshold`` of its bounds. lru and fifo evict one entry at a
time in O(1); lfu and size sort once and evict down to 95% of the threshold, so a sort is
paid at most once per ~5% of the front's bytes or items put.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, NamedTuple

_MISSING: Any = object()


class MemoryStats(NamedTuple):
    """A snapshot of the memory front's counters."""

    hits: int
    misses: int
    puts: int
    evictions: int
    evicted_bytes: int
    entries: int
    bytes: int


POLICIES = ("lru", "fifo", "lfu", "size", "time", "none")
_BATCH_SLACK = 0.05  # lfu/size evict this share of the bounds below the threshold


class MemoryFront:
    """A thread-safe map bounded by ``limit`` bytes and ``max_items`` entries.

    ``limit == 0`` disables it: every get misses and nothing is stored. A value larger
    than ``limit // 8`` is never kept, so one big value cannot flush the whole front.
    Entries may carry an absolute expiry (``time.time()`` seconds); an expired entry is a
    miss and is dropped when seen, and every ``cleanup_interval`` seconds a put sweeps
    all expired entries. ``policy`` is the cache's (``none`` keeps lru order: RAM must
    stay bounded); eviction starts above ``threshold`` x the bounds.
    """

    def __init__(
        self,
        limit: int,
        max_items: int = 100_000,
        policy: str = "lru",
        threshold: float = 1.0,
        cleanup_interval: float | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"memory policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"eviction threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.limit = max(0, int(limit))
        self.max_items = max(0, int(max_items))
        self.policy = policy
        self._lru = policy in ("lru", "lfu", "none")  # lfu breaks ties by recency
        self._counts: dict[Hashable, int] | None = {} if policy == "lfu" else None
        self._batch = policy in ("lfu", "size")
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._expires: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self._sweep_every = cleanup_interval
        self._next_sweep = time.monotonic() + (cleanup_interval or 0)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.puts = 0
        self.evictions = 0
        self.evicted_bytes = 0
        self.expirations = 0
        if self._counts is not None:
            self.get = self._get_lfu  # type: ignore[method-assign]

    @property
    def max_value(self) -> int:
        """The largest value (in bytes) the front will keep."""
        return self.limit // 8

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key`` or ``default``; an LRU hit marks the entry most recent.

        Lock-free on purpose (the hit path is the hottest code in the package): each
        OrderedDict call is atomic under the GIL, a key removed between the lookup and
        ``move_to_end`` still returns the value read, and a thread race can lose one
        counter increment, never corrupt the map. Expiry and all writes take the lock.
        """
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return default
        if self._expires and key in self._expires:
            return self._get_expiring(key, value, default)
        if self._lru:
            try:  # noqa: SIM105 (contextlib.suppress costs ~100 ns on the hottest path)
                self._data.move_to_end(key)
            except KeyError:
                pass  # removed concurrently: the value read is still a valid answer
        self.hits += 1
        return value

    def _get_lfu(self, key: Hashable, default: Any = None) -> Any:
        """``get`` for lfu: the same, plus one hit counted for the entry."""
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return default
        if self._expires and key in self._expires:
            return self._get_expiring(key, value, default)
        counts = self._counts
        assert counts is not None
        counts[key] = counts.get(key, 0) + 1
        try:  # noqa: SIM105
            self._data.move_to_end(key)
        except KeyError:
            pass
        self.hits += 1
        return value

    def _get_expiring(self, key: Hashable, value: Any, default: Any) -> Any:
        with self._lock:
            expires = self._expires.get(key)
            if expires is not None and expires <= time.time():
                if key in self._data:
                    self._drop(key)
                    self.expirations += 1
                self.misses += 1
                return default
            if self._lru and key in self._data:
                self._data.move_to_end(key)
                if self._counts is not None:
                    self._counts[key] = self._counts.get(key, 0) + 1
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any, size: int, expire_at: float | None = None) -> bool:
        """Store ``value`` accounted as ``size`` bytes; False (and nothing kept) if too big.

        Evicts in policy order once either bound passes ``threshold`` of itself.
        """
        with self._lock:
            if key in self._data:
                self._drop(key)
            if self.limit == 0 or size > self.limit // 8 or self.max_items == 0:
                return False
            self._data[key] = value
            self._sizes[key] = size
            if expire_at is not None:
                self._expires[key] = expire_at
            self.nbytes += size
            self.puts += 1
            high, high_items = self._high()
            if self.nbytes > high or len(self._data) > high_items:
                if self._batch:  # sort once, then leave room for the next puts
                    low = 1 - _BATCH_SLACK
                    self._shrink(int(high * low), int(high_items * low))
                else:
                    self._shrink(high, high_items)
            if self._sweep_every is not None and self._expires:
                now = time.monotonic()
                if now >= self._next_sweep:
                    self._next_sweep = now + self._sweep_every
                    self._expire_locked(time.time())
            return True

    def _high(self) -> tuple[int, int]:
        """The bounds eviction starts above: ``threshold`` x bytes and items."""
        t = self.threshold
        if t >= 1:
            return self.limit, self.max_items
        return int(self.limit * t), max(1, int(self.max_items * t))

    def _drop(self, key: Hashable) -> int:
        del self._data[key]
        self._expires.pop(key, None)
        if self._counts is not None:
            self._counts.pop(key, None)
        size = self._sizes.pop(key)
        self.nbytes -= size
        return size

    def _victims(self) -> list[Hashable]:
        """Every key in eviction order, for the policies that need a sort (lfu, size)."""
        if self._counts is not None:
            counts = self._counts
            # data is in recency order: enumerate keeps ties least-recent first
            ranked = sorted(enumerate(self._data), key=lambda p: (counts.get(p[1], 0), p[0]))
            return [k for _, k in ranked]
        return sorted(self._data, key=self._sizes.__getitem__, reverse=True)  # stable: oldest first

    def _shrink(self, limit: int, max_items: int) -> None:
        data = self._data
        if not (data and (self.nbytes > limit or len(data) > max_items)):
            return
        if self._batch:
            for key in self._victims():
                if not (self.nbytes > limit or len(data) > max_items):
                    return
                size = self._drop(key)
                self.evictions += 1
                self.evicted_bytes += size
            return
        sizes, expires = self._sizes, self._expires
        while data and (self.nbytes > limit or len(data) > max_items):
            key, _ = data.popitem(last=False)
            size = sizes.pop(key)
            expires.pop(key, None)
            self.nbytes -= size
            self.evictions += 1
            self.evicted_bytes += size

    def resize(self, limit: int, max_items: int | None = None) -> int:
        """Change the bounds (e.g. shrink under memory pressure); returns entries evicted."""
        with self._lock:
            before = self.evictions
            self.limit = max(0, int(limit))
            if max_items is not None:
                self.max_items = max(0, int(max_items))
            self._shrink(self.limit, self.max_items)
            return self.evictions - before

    def discard(self, key: Hashable) -> bool:
        """Forget ``key``; True if it was held."""
        with self._lock:
            if key not in self._data:
                return False
            self._drop(key)
            return True

    def expire(self, now: float | None = None) -> int:
        """Drop entries whose expiry has passed; returns how many. Costs O(expiring entries)."""
        now = time.time() if now is None else now
        with self._lock:
            return self._expire_locked(now)

    def _expire_locked(self, now: float) -> int:
        dead = [k for k, t in self._expires.items() if t <= now]
        for key in dead:
            self._drop(key)
        self.expirations += len(dead)
        return len(dead)

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._lock:
            n = len(self._data)
            self._data.clear()
            self._sizes.clear()
            self._expires.clear()
            if self._counts is not None:
                self._counts.clear()
            self.nbytes = 0
            return n

    def keys(self) -> list[Hashable]:
        """A snapshot of the held keys, least recent first."""
        with self._lock:
            return list(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            if key not in self._data:
                return False
            t = self._expires.get(key)
            return t is None or t > time.time()

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> MemoryStats:
        """The counters and current size, read under the lock."""
        with self._lock:
            return MemoryStats(
                self.hits,
                self.misses,
                self.puts,
                self.evictions,
                self.evicted_bytes,
                len(self._data),
                self.nbytes,
            )
