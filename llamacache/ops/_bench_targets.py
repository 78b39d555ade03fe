"""What ``bench`` measures: op sequences (workloads) and the stores it drives (targets).

Every target offers ``get(key) -> bool`` (hit?), ``put(key, value)`` and ``close()``.
Lower tiers are driven alone through the engine's ``TierDriver`` (values framed by the
engine, once per value), so a network tier benchmarks exactly like the disk tier.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import random
import shutil
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from llamacache.config.settings import CacheSettings, NetworkSettings, ObjectSettings
from llamacache.engine.bench import TierDriver
from llamacache.engine.disk import DiskTier
from llamacache.engine.memory import MemoryFront
from llamacache.engine.protocol import CacheTier
from llamacache.engine.tiered import TieredCache
from llamacache.errors import OptionError, UsageError

WORKLOADS = ("uniform", "zipf", "scan", "mixed")
TIERS = ("memory", "disk", "local", "network", "object")
ZIPF_S = 1.1
KEY_PREFIX = "llamacache-bench:"
# our policy -> the raw diskcache policy closest to it (for --compare)
DISKCACHE_POLICY = {
    "lru": "least-recently-used",
    "lfu": "least-frequently-used",
    "fifo": "least-recently-stored",
    "time": "least-recently-stored",
    "size": "least-recently-stored",
    "none": "none",
}


@dataclass(frozen=True)
class SharedTiers:
    """The shared tiers a bench may drive (picklable, for worker processes)."""

    network: NetworkSettings | None = None
    object_store: ObjectSettings | None = None


class Target(Protocol):
    label: str

    def get(self, key: Hashable) -> bool: ...
    def put(self, key: Hashable, value: bytes) -> None: ...
    def close(self) -> None: ...


def key_indices(workload: str, keys: int, n: int, rng: random.Random, start: int = 0) -> list[int]:
    """``n`` key indices in ``range(keys)``; ``start`` continues a scan across batches."""
    if workload == "uniform":
        return [rng.randrange(keys) for _ in range(n)]
    if workload == "scan":
        return [(start + i) % keys for i in range(n)]
    if workload == "zipf":
        return _zipf(keys, n, rng)
    # mixed: a zipf-hot working set interrupted by scans (the pattern that floods an LRU)
    out = _zipf(keys, n, rng)
    pos = start
    for i in range(0, n, 1000):
        if rng.random() < 0.2:
            for j in range(i, min(n, i + 1000)):
                out[j] = pos % keys
                pos += 1
    return out


_CUM: dict[int, list[float]] = {}


def _zipf(keys: int, n: int, rng: random.Random) -> list[int]:
    cum = _CUM.get(keys)
    if cum is None:
        cum = _CUM[keys] = list(itertools.accumulate(1.0 / (k**ZIPF_S) for k in range(1, keys + 1)))
    total = cum[-1]
    return [bisect.bisect_left(cum, rng.random() * total) for _ in range(n)]


def values(low: int, high: int, rng: random.Random, count: int = 16) -> list[bytes]:
    """A pool of random payloads with sizes spread over ``low..high``."""
    sizes = [low] if low == high else [rng.randint(low, high) for _ in range(count)]
    return [rng.randbytes(s) for s in sizes]


def bench_key(i: int) -> str:
    return f"{KEY_PREFIX}{i}"


class MemoryTarget:
    def __init__(self, settings: CacheSettings) -> None:
        self.label = "llamacache memory front"
        self.front = MemoryFront(settings.memory_size, settings.max_items, settings.memory_policy)
        self._miss = object()

    def get(self, key: Hashable) -> bool:
        return self.front.get(key, self._miss) is not self._miss

    def put(self, key: Hashable, value: bytes) -> None:
        self.front.put(key, value, len(value))

    def close(self) -> None:
        self.front.clear()


class TierTarget:
    """A lower tier driven alone (``engine.bench.TierDriver``): framed bytes in and out."""

    def __init__(self, tier: CacheTier, settings: CacheSettings, label: str) -> None:
        self.label = label
        self.driver = TierDriver(tier, settings)

    def get(self, key: Hashable) -> bool:
        return self.driver.hit(key)

    def put(self, key: Hashable, value: bytes) -> None:
        self.driver.put(key, value)

    def close(self) -> None:
        self.driver.close()


class TieredTarget:
    def __init__(self, settings: CacheSettings) -> None:
        self.label = "llamacache tiered"
        self.cache = TieredCache(settings)
        self._miss = object()

    def get(self, key: Hashable) -> bool:
        return self.cache.get(key, self._miss) is not self._miss

    def put(self, key: Hashable, value: bytes) -> None:
        self.cache.put(key, value)

    def close(self) -> None:
        self.cache.close()


class DiskcacheTarget:
    def __init__(self, settings: CacheSettings, directory: Path) -> None:
        import diskcache

        policy = DISKCACHE_POLICY[settings.policy]
        self.label = f"diskcache {policy}"
        self.directory = directory
        self.cache = diskcache.Cache(
            str(directory), eviction_policy=policy, size_limit=settings.disk_size
        )

    def get(self, key: Hashable) -> bool:
        return self.cache.get(key) is not None

    def put(self, key: Hashable, value: bytes) -> None:
        self.cache.set(key, value)

    def close(self) -> None:
        self.cache.close()


class CachetoolsTarget:
    def __init__(self, settings: CacheSettings) -> None:
        import cachetools

        self.label = "cachetools.LRUCache"
        self.cache: Any = cachetools.LRUCache(maxsize=max(1, settings.memory_size), getsizeof=len)

    def get(self, key: Hashable) -> bool:
        return self.cache.get(key) is not None

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) <= self.cache.maxsize:
            self.cache[key] = value

    def close(self) -> None:
        self.cache.clear()


def network_tier(network: NetworkSettings | None, name: str) -> CacheTier:
    """The shared tier for ``--tier network``; UsageError when none is configured."""
    if network is None:
        raise OptionError(
            "tier",
            'needs a shared tier: set [cache.network] url (e.g. "redis://localhost:6379/0") '
            "or LLAMACACHE_NETWORK_URL",
            value="network",
        )
    try:  # imported by name: the network tier and its redis client are optional
        module = importlib.import_module("llamacache.engine.network")
    except ImportError as exc:
        raise OptionError(
            "tier", f"the network tier is not available ({exc})", value="network"
        ) from None
    tier: CacheTier = module.NetworkTier(network, name, listen=False)
    return tier


def object_tier(shared: SharedTiers, name: str) -> CacheTier:
    """The object tier for ``--tier object``, taking values of every size (a bench's values
    are small; the configured ``threshold`` would keep them all local); OptionError when
    none is configured."""
    store = shared.object_store
    if store is None:
        raise OptionError(
            "tier",
            'needs an object store: set [cache.object] url (e.g. "s3://bucket/prefix") '
            "or LLAMACACHE_OBJECT_URL",
            value="object",
        )
    try:
        import obstore  # noqa: F401
    except ImportError as exc:  # obstore is an optional extra
        from llamacache.engine.objectstore import missing_client

        raise missing_client(exc) from None
    from llamacache.engine.objectstore import ObjectTier

    keys = shared.network.keys if shared.network is not None else ()
    tier: CacheTier = ObjectTier(replace(store, threshold=1), name, keys)
    return tier


def check_shared(kind: str, shared: SharedTiers, name: str) -> None:
    """OptionError now when ``kind`` is a shared tier that is not configured or not installed."""
    if kind == "network":
        network_tier(shared.network, name)
    elif kind == "object":
        object_tier(shared, name).close()  # type: ignore[attr-defined]


def build(kind: str, settings: CacheSettings, shared: SharedTiers, scratch: Path) -> Target:
    """One target by kind: a tier name, or "diskcache" / "cachetools" for --compare."""
    if kind == "memory":
        return MemoryTarget(settings)
    if kind == "disk":
        return TierTarget(DiskTier(settings), settings, "llamacache disk tier")
    if kind == "local":
        return TieredTarget(settings)
    if kind == "network":
        tier = network_tier(shared.network, settings.name)
        return TierTarget(tier, settings, "llamacache network")
    if kind == "object":
        return TierTarget(object_tier(shared, settings.name), settings, "llamacache object")
    if kind == "diskcache":
        return DiskcacheTarget(settings, scratch / "raw-diskcache")
    if kind == "cachetools":
        return CachetoolsTarget(settings)
    raise UsageError(f"unknown bench target {kind!r}")


def shared(kind: str) -> bool:
    """True if the target's data outlives the process (filled once, shared by workers)."""
    return kind in ("disk", "local", "network", "object", "diskcache")


def remove_bench_keys(target: Target, keys: Sequence[int]) -> None:
    """Remove what bench wrote into a real cache (``--cache NAME``)."""
    if isinstance(target, TieredTarget):
        for i in keys:
            target.cache.remove(bench_key(i))
    elif isinstance(target, TierTarget):
        for i in keys:
            target.driver.remove(bench_key(i))


def scratch_settings(settings: CacheSettings, scratch: Path) -> CacheSettings:
    return replace(settings, name="bench", path=scratch / "bench")


def remove_scratch(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
