"""One policy per cache: the memory front evicts in the cache's order from the same
threshold, max_age is honoured by every cleanup, and file reads count as one hit."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llamacache import CacheManager, ModelCache
from llamacache.config.settings import CacheSettings
from llamacache.engine.memory import MemoryFront
from llamacache.engine.tiered import TieredCache
from tests.cli.helpers import cli, run

BASE = CacheSettings(name="c", path=Path("/nonexistent"), disk_size=10**9, memory_size=10**6)


def test_lfu_front_keeps_the_key_with_many_hits() -> None:
    m = MemoryFront(10**6, 3, "lfu")
    for k in "abc":
        m.put(k, k, 1)
    for _ in range(5):
        m.get("a")  # the oldest, but read 5 times
    m.get("b")
    m.put("d", "d", 1)
    assert "a" in m and "b" in m and "c" not in m


def test_size_front_evicts_the_largest_first() -> None:
    m = MemoryFront(8000, 100, "size")
    m.put("big", b"", 900)
    for i in range(7):
        m.put(i, b"", 1000)
    m.put("last", b"", 200)  # over 8000: the 1000-byte entries go first, oldest first
    assert "last" in m and "big" in m and 0 not in m and 6 in m


@pytest.mark.parametrize("policy", ["fifo", "time"])
def test_fifo_and_time_fronts_evict_the_oldest_stored(policy: str) -> None:
    m = MemoryFront(10**6, 3, policy)
    for k in "abc":
        m.put(k, k, 1)
    m.get("a")
    m.put("d", "d", 1)
    assert "a" not in m and m.keys() == ["b", "c", "d"]


def test_front_starts_at_the_eviction_threshold() -> None:
    m = MemoryFront(1000, 100, "lru", threshold=0.5)
    for i in range(6):
        m.put(i, b"", 100)
    assert m.nbytes <= 500 and m.keys() == [1, 2, 3, 4, 5]


def test_tiered_front_uses_the_cache_policy_and_threshold(tmp_path: Path) -> None:
    s = replace(BASE, path=tmp_path / "c", policy="lfu", eviction_threshold=0.8)
    cache = TieredCache(s, metrics=False)
    assert cache.memory.policy == "lfu" and cache.memory.threshold == 0.8
    cache.close()


def test_memory_cleanup_interval_sweeps_expired_entries() -> None:
    m = MemoryFront(10**6, 100, "lru", cleanup_interval=0.05)
    for i in range(20):
        m.put(i, b"", 1, expire_at=time.time() + 0.01)
    time.sleep(0.1)
    m.put("trigger", b"", 1)  # a put after the interval sweeps everything expired
    assert len(m) == 1 and m.expirations == 20


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu", "size"])
def test_max_age_is_honoured_by_cleanup_for_every_policy(tmp_path: Path, policy: str) -> None:
    s = replace(BASE, path=tmp_path / "c", policy=policy, max_age=0.2)
    cache = TieredCache(s, metrics=False)
    cache.put("old", b"o")
    cache.put("ttl", b"t", ttl=3600)  # its own TTL wins over max_age
    time.sleep(0.3)
    cache.put("new", b"n")
    done = cache.cleanup()
    assert done.expired == 1
    assert cache.get("old") is None and cache.get("new") == b"n" and cache.get("ttl") == b"t"
    cache.close()


def test_file_reads_count_as_hits(tmp_path: Path) -> None:
    with CacheManager() as m:
        models = ModelCache(m)
        models.put_model("m", {"w": np.ones(10, np.float32)})
        disk = models.cache.disk
        before = disk.hits
        models.get_model("m")
        path = models.cache.get_path(models.entry_key("m", "main", "model.safetensors"))
        assert path is not None
        assert disk.hits - before >= 2  # get_model (file + manifest) and get_path


@pytest.mark.parametrize("size", [10, 100_000])
def test_one_cli_get_counts_one_hit(size: int, tmp_path: Path) -> None:
    src = tmp_path / "v"
    src.write_bytes(b"v" * size)
    assert cli("put", "k", "--file", str(src)).exit_code == 0
    assert run("get", "k").returncode == 0
    with CacheManager() as m:
        m.cache("default").flush()
    rows = json.loads(run("--json", "ls").stdout)
    (entry,) = [e for e in rows["entries"] if e["key"] == "k"] if "entries" in rows else [rows]
    assert entry["hits"] == 1, entry
