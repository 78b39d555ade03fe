"""In-process counters and latency histograms per cache, flushed into the cache's index.

Counting must not slow the cache: a get bumps plain ints the engine already keeps
(``MemoryFront.hits``, ``DiskTier.misses``...) and nothing else. A single sleeping
daemon thread (the ticker) wakes every ``TICK_SECONDS``: it opens a sampling window
on each cache (its next ``WINDOW`` gets are timed, each weighted by the gets since
the previous window, so histogram counts track the get count) and, every
``FLUSH_SECONDS``, adds the growth since the last flush to ``metrics_store`` in one
transaction. ``close()`` and interpreter exit flush too. Processes merge by addition;
a kill -9 loses only the unflushed interval. Puts (>= 10 us each) are always timed.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from llamacache.engine import metrics_store

if TYPE_CHECKING:
    from llamacache.engine.tiered import TieredCache

log = logging.getLogger("llamacache.metrics")

TIERS = ("memory", "disk", "network")
COUNTERS = ("hits", "misses", "puts", "evictions", "evicted_bytes", "expirations", "corrupt")
FLUSH_SECONDS = 10.0
TICK_SECONDS = 1.0  # how often the ticker wakes: one sampling window per cache per tick
WINDOW = 16  # gets timed per sampling window

# Upper bounds in seconds, 1-2.5-5 steps from 1 us to 10 s (plus +Inf).
BUCKETS: tuple[float, ...] = tuple(m * 10.0**e for e in range(-6, 1) for m in (1.0, 2.5, 5.0)) + (
    10.0,
)

Key = tuple[str, str]


def bucket_name(bound: float) -> str:
    """The stored counter name of a histogram bucket: ``le_0.0000025``, ``le_+Inf``."""
    if bound == float("inf"):
        return "le_+Inf"
    return "le_" + f"{bound:.7f}".rstrip("0").rstrip(".")


BUCKET_NAMES = tuple(bucket_name(b) for b in (*BUCKETS, float("inf")))


class Histogram:
    """Fixed log-spaced buckets; ``observe`` is a bisect and two adds (no lock: a lost
    update under a thread race is one sample, never a broken structure)."""

    __slots__ = ("counts", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum_us = 0

    def observe(self, seconds: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += weight
        self.sum_us += int(seconds * 1e6) * weight

    def totals(self, tier: str) -> dict[Key, int]:
        out = {(tier, n): c for n, c in zip(BUCKET_NAMES, self.counts, strict=True)}
        out[(tier, "sum_us")] = self.sum_us
        out[(tier, "count")] = sum(self.counts)
        return out


class CacheMetrics:
    """The counters of one open TieredCache, its sampling windows and its flushes."""

    def __init__(self, cache: TieredCache, interval: float = FLUSH_SECONDS) -> None:
        self._cache = weakref.ref(cache)
        self.directory = cache.disk.directory
        self.interval = interval
        self.get_latency = Histogram()
        self.put_latency = Histogram()
        self.window_left = 0  # timed gets left in the open window
        self.weight = 1  # gets each timed get stands for
        self._gets_at_window = 0
        self._flushed: dict[Key, int] = {}
        self._last = time.monotonic()
        self._lock = threading.Lock()  # one flush at a time; never taken on a get
        self._closed = False
        self.ticking = True  # False: the ticker leaves this cache alone (deterministic tests)
        _LIVE.add(self)
        _ensure_ticker()

    def open_window(self) -> None:
        """Time the next WINDOW gets of the cache (the ticker calls this every tick)."""
        cache = self._cache()
        if cache is None or self._closed:
            return
        cache.tally_hits()
        gets = cache.memory.hits + cache.memory.misses
        self.weight = max(1, (gets - self._gets_at_window) // WINDOW)
        self._gets_at_window = gets
        self.window_left = WINDOW
        cache.start_sampling()

    def totals(self) -> dict[Key, int]:
        """Every counter of this process since open: ``{(tier, name): value}``."""
        cache = self._cache()
        out: dict[Key, int] = {}
        if cache is None:
            return out
        cache.tally_hits()
        m, d = cache.memory, cache.disk
        for name in ("hits", "misses", "puts", "evictions", "evicted_bytes", "expirations"):
            out[("memory", name)] = getattr(m, name)
            out[("disk", name)] = getattr(d, name)
        out[("disk", "corrupt")] = cache.corrupt
        out[("disk", "ghost_hits")] = d.ghost_hits
        for tier in cache.lower:
            st = tier.stats()
            for name in ("hits", "misses", "puts", "evictions", "evicted_bytes", "corrupt"):
                out[(st.tier, name)] = getattr(st, name)
        out.update(self.get_latency.totals("latency.get"))
        out.update(self.put_latency.totals("latency.put"))
        return out

    def pending(self) -> dict[Key, int]:
        """Growth since the last successful flush (what a kill -9 now would lose)."""
        flushed = self._flushed
        return {k: v - flushed.get(k, 0) for k, v in self.totals().items()}

    def due(self) -> bool:
        """True when ``interval`` has passed since the last flush (one clock read)."""
        return time.monotonic() - self._last >= self.interval

    def tick(self) -> None:
        """The ticker's visit: open a sampling window; flush and check memory when due."""
        if not self.ticking:
            return
        self.open_window()
        if self.due() and self.flush(blocking=False):
            cache = self._cache()
            if cache is not None and not self._closed:
                cache.check_memory_pressure()

    def flush(self, blocking: bool = True) -> bool:
        """Add the growth since the last flush to the stored counters; False if that failed.

        One SQLite transaction (~1 ms) on a connection of its own, so any thread may call
        it. A failure (read-only or vanished directory, lock timeout) keeps the growth for
        the next attempt.
        """
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            self._last = time.monotonic()
            totals = self.totals()
            flushed = self._flushed
            deltas = {k: v - flushed.get(k, 0) for k, v in totals.items()}
            if any(deltas.values()):
                metrics_store.add(self.directory, deltas)
            self._flushed = totals
            cache = self._cache()
            if cache is not None and not self._closed:
                cache.disk.note_ghosts(metrics_store.has_ghosts(self.directory))
            return True
        except metrics_store.FLUSH_ERRORS as exc:
            log.debug("metrics of %s not flushed: %s", self.directory, exc)
            return False
        finally:
            self._lock.release()

    def close(self) -> None:
        """Final flush (waits for a ticker flush in progress); no more ticks or exit flush."""
        _LIVE.discard(self)
        self.flush()
        self._closed = True


_LIVE: weakref.WeakSet[CacheMetrics] = weakref.WeakSet()
_ticker_pid = 0  # the process whose ticker thread runs (a forked child starts its own)
_ticker_lock = threading.Lock()


def _tick_forever() -> None:
    while True:
        time.sleep(TICK_SECONDS)
        for metrics in list(_LIVE):
            try:
                metrics.tick()
            except Exception as exc:  # noqa: BLE001 (a ticker must outlive any one cache)
                log.debug("metrics tick failed: %s", exc)


def _ensure_ticker() -> None:
    """Start the ticker thread once per process (again in a forked child)."""
    global _ticker_pid
    if _ticker_pid == os.getpid():
        return
    with _ticker_lock:
        if _ticker_pid != os.getpid():
            threading.Thread(target=_tick_forever, name="llamacache-metrics", daemon=True).start()
            _ticker_pid = os.getpid()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) inherits the parent's counts and no thread.

    Counts up to the fork are the parent's to flush: the child starts its deltas there.
    """
    for metrics in list(_LIVE):
        metrics._lock = threading.Lock()
        metrics._flushed = metrics.totals()
    if _LIVE:
        _ensure_ticker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    for metrics in list(_LIVE):
        metrics.flush()


# -- reading stored counters ---------------------------------------------------------------


def hit_rate(counters: Mapping[str, Mapping[str, int]]) -> float | None:
    """Share of gets served by any tier; None before the first get.

    Every get asks the memory front first, so its hits + misses is the number of gets.
    """
    mem = counters.get("memory", {})
    gets = mem.get("hits", 0) + mem.get("misses", 0)
    if not gets:
        return None
    hits = sum(counters.get(t, {}).get("hits", 0) for t in TIERS)
    return min(1.0, hits / gets)


def histogram_of(counters: Mapping[str, Mapping[str, int]], op: str) -> dict[str, int]:
    """The stored buckets of ``latency.<op>`` (cumulative is left to the exporter)."""
    return dict(counters.get(f"latency.{op}", {}))


def quantile(buckets: Mapping[str, int], q: float) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` (seconds), None when empty."""
    counts = [buckets.get(n, 0) for n in BUCKET_NAMES]
    total = sum(counts)
    if not total:
        return None
    need, seen = q * total, 0
    for bound, c in zip((*BUCKETS, float("inf")), counts, strict=True):
        seen += c
        if seen >= need:
            return bound
    return float("inf")
