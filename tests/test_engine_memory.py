"""The memory front: byte and item bounds, LRU vs FIFO order, expiry, thread safety."""

from __future__ import annotations

import threading

from llamacache.engine.memory import MemoryFront


def test_byte_bound_evicts_least_recent() -> None:
    m = MemoryFront(limit=800, max_items=100)
    for i in range(8):
        assert m.put(i, b"x" * 100, 100)
    assert m.nbytes == 800 and len(m) == 8
    m.get(0)  # 0 becomes most recent
    m.put(8, b"y" * 100, 100)
    assert 1 not in m and 0 in m and m.nbytes == 800
    assert m.evictions == 1 and m.evicted_bytes == 100


def test_item_bound() -> None:
    m = MemoryFront(limit=10**6, max_items=3)
    for i in range(5):
        m.put(i, i, 1)
    assert m.keys() == [2, 3, 4]


def test_too_big_values_are_not_kept_and_zero_disables() -> None:
    m = MemoryFront(limit=800)
    assert not m.put("big", b"x" * 101, 101)  # > limit // 8
    assert "big" not in m
    off = MemoryFront(limit=0)
    assert not off.put("k", b"", 0)
    assert off.get("k", "miss") == "miss" and off.misses == 1


def test_lru_vs_fifo_order() -> None:
    lru, fifo = MemoryFront(10**6, 3, "lru"), MemoryFront(10**6, 3, "fifo")
    for m in (lru, fifo):
        for k in "abc":
            m.put(k, k, 1)
        m.get("a")
        m.put("d", "d", 1)
    assert lru.keys() == ["c", "a", "d"]  # b was least recently used
    assert fifo.keys() == ["b", "c", "d"]  # a was first in, reads do not matter


def test_resize_discard_clear_and_counters() -> None:
    m = MemoryFront(10_000, 100)
    for i in range(10):
        m.put(i, b"x" * 100, 100)
    assert m.resize(500) == 5 and m.nbytes == 500
    assert m.discard(9) and not m.discard(9)
    m.put(5, b"z", 1)  # replacing an entry re-accounts its size
    assert m.nbytes == 301
    assert m.get(5) == b"z" and m.get(99) is None
    s = m.stats()
    assert (s.hits, s.misses, s.entries, s.bytes) == (1, 1, 4, 301)
    assert m.clear() == 4 and m.nbytes == 0 and len(m) == 0


def test_expiry() -> None:
    m = MemoryFront(10_000)
    m.put("old", 1, 1, expire_at=1.0)
    m.put("new", 2, 1, expire_at=2e12)
    assert m.get("old") is None and "old" not in m
    assert m.get("new") == 2
    m.put("old2", 1, 1, expire_at=1.0)
    assert m.expire() == 1


def test_threads_hammering_keep_bounds_consistent() -> None:
    m = MemoryFront(limit=50_000, max_items=300)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(20_000):
                k = (seed * 7 + i) % 1000
                if i % 3:
                    m.get(k)
                else:
                    m.put(k, b"v" * (k % 50), k % 50)
                if i % 5000 == 0:
                    m.discard(k)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(m) <= 300 and m.nbytes <= 50_000
    assert m.nbytes == sum(m._sizes.values()) and len(m._sizes) == len(m)
