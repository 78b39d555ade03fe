"""``engine.bench.TierDriver``: bench drives one tier alone, and what it stores is valid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llamacache.config import resolve
from llamacache.engine import framing
from llamacache.engine.bench import TierDriver
from llamacache.engine.disk import DiskTier
from llamacache.engine.tiered import TieredCache


def test_values_framed_once_are_stored_bound_to_each_key(tmp_path: Path) -> None:
    settings = replace(resolve(env={}).cache("default"), path=tmp_path / "c", file_threshold=100)
    driver = TierDriver(DiskTier(settings), settings)
    pool = [b"small", b"L" * 5000]
    for i in range(6):
        driver.put(f"k{i}", pool[i % 2])
    assert driver.hit("k5") and not driver.hit("nope")
    assert driver.remove("k0") and not driver.hit("k0")
    driver.close()
    cache = TieredCache(settings, metrics=False)
    for i in range(1, 6):  # read back through the verified path: no entry of another key
        assert cache.get(f"k{i}") == pool[i % 2]
    cache.close()


def test_rebind_moves_only_the_key_binding() -> None:
    settings = resolve(env={}).cache("default")
    meta, payload = framing.encode(b"value", settings, "a")
    moved = framing.rebind(meta, "b")
    assert framing.check_key(moved, "b") and not framing.check_key(moved, "a")
    assert framing.decode(moved, payload, "c", "b") == b"value"
    assert framing.parse_meta(moved).digest == framing.parse_meta(meta).digest
    with pytest.raises(ValueError):
        framing.rebind(meta[:-1] + bytes([meta[-1] ^ 1]), "b")
