"""Epoch shards on a real training cache: mapped views, integrity, kills, eviction warnings."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llamacache import CacheManager, DatasetCache
from llamacache.errors import CorruptEntryError
from llamacache.ml import NotCachedError
from llamacache.ml.epoch import DatasetTooLargeWarning

ROW = 64 * 4  # bytes of one record below
# Read at import: the autouse fixture clears LLAMACACHE_* variables before each test.
TRIALS = int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "4"))
SEED = int(os.environ.get("LLAMACACHE_FAULT_SEED", "16"))


@pytest.fixture
def manager() -> Iterator[CacheManager]:
    with CacheManager() as m:
        yield m


class Source:
    """A dataset with a cache_key that counts how often it is read."""

    def __init__(self, records: list[Any], key: str = "shards-v1") -> None:
        self.records, self.cache_key, self.reads = records, key, 0

    def __iter__(self) -> Iterator[Any]:
        self.reads += 1
        return iter(self.records)


def _tokens(n: int = 50, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 32000, 64, dtype=np.int32) for _ in range(n)]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return bool(a == b)


def test_many_shards_read_back_as_read_only_views_in_a_fresh_manager(
    cache_root: Path,
) -> None:
    data = Source(_tokens(100))
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=8, shard_bytes=3 * 8 * ROW)  # 3 batches a shard
        first = [b.copy() for b in dc.stream_dataset(data)]
        key = dc.dataset_key(data)
        shards = dc.get_dataset(key).info["shards"]
        assert [s["count"] for s in shards] == [3, 3, 3, 3, 1]
    with CacheManager() as m:  # an empty memory front: everything from the files
        dc = DatasetCache(m, batch_size=8, shard_bytes=3 * 8 * ROW)
        again = list(dc.stream_dataset(data))
        assert data.reads == 1
        assert _equal(first, again)
        assert all(not b.flags.writeable for b in again)
        ds = dc.get_dataset(key)
        assert np.shares_memory(ds.batch(5), ds.batch(5))  # a view of the map, not a copy
        assert list(ds.batches(4, 7))[0].tobytes() == first[4].tobytes()
        assert _equal(ds[97], data.records[97])
        with pytest.raises(ValueError):
            again[0][0] = 1  # read-only


def test_dict_and_tuple_batches_are_sharded_field_by_field(manager: CacheManager) -> None:
    dc = DatasetCache(manager, batch_size=4)
    recs = [{"ids": t, "mask": (t > 100).astype(np.uint8)} for t in _tokens(10)]
    key = dc.cache_dataset(recs)
    info = dc.get_dataset(key).info
    assert info["layout"]["t"] == "dict" and info["shards"][0]["count"] == 3
    assert _equal(list(dc.get_dataset(key)), recs)
    tups = [(t, np.float32(i) * np.ones(2, np.float32)) for i, t in enumerate(_tokens(6))]
    key = dc.cache_dataset(tups)
    assert dc.get_dataset(key).info["layout"]["t"] == "tuple"
    assert _equal(list(dc.get_dataset(key)), tups)


def test_an_epoch_that_leaves_the_layout_keeps_shards_then_entries(
    manager: CacheManager,
) -> None:
    dc = DatasetCache(manager, batch_size=4, shard_bytes=2 * 4 * ROW)
    recs: list[Any] = [*_tokens(20), "text", *_tokens(7, seed=5)]
    first = list(dc.stream_dataset(Source(recs, "mixed")))
    key = dc.dataset_key(Source(recs, "mixed"))
    info = dc.get_dataset(key).info
    assert sum(s["count"] for s in info["shards"]) == 5  # batches 0-4: arrays, sharded
    assert f"ds:{key}/00000005" in dc.cache  # the batch with a str and all after it
    assert _equal(list(dc.get_dataset(key)), recs)
    assert _equal(list(dc.stream_dataset(Source(recs, "mixed"))), first)


def test_a_corrupt_shard_is_never_served(cache_root: Path) -> None:
    data = Source(_tokens())
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=8)
        key = dc.cache_dataset(data)
        path = dc.cache.get_path(f"ds:{key}/shard/00000")
        assert path is not None
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # a flipped bit in the last batch
    path.write_bytes(bytes(raw))
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=8)
        with pytest.raises(CorruptEntryError, match="shard"):
            list(dc.get_dataset(key).batches())


def test_a_corrupt_shard_with_on_corrupt_miss_is_refilled_from_the_source(
    cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_ON_CORRUPT", "miss")
    data = Source(_tokens())
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=8)
        first = [b.copy() for b in dc.stream_dataset(data)]
        path = dc.cache.get_path(f"ds:{dc.dataset_key(data)}/shard/00000")
        assert path is not None
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=8)
        assert _equal(list(dc.stream_dataset(data)), first)
        assert data.reads == 2
        assert _equal(list(dc.stream_dataset(data)), first)
        assert data.reads == 2  # refilled and whole again


def test_a_shard_replaced_by_another_fill_is_a_miss_not_corruption(
    manager: CacheManager, tmp_path: Path
) -> None:
    dc = DatasetCache(manager, batch_size=8)
    data = Source(_tokens())
    first = [b.copy() for b in dc.stream_dataset(data)]
    key = dc.dataset_key(data)
    other = tmp_path / "other"
    other.write_bytes(b"another process's shard")
    dc.cache.put_file(f"ds:{key}/shard/00000", other)  # a refill with other contents
    assert _equal(list(dc.stream_dataset(data)), first)  # from the source, no error
    assert data.reads == 2
    assert _equal(list(dc.stream_dataset(data)), first) and data.reads == 2


def test_an_epoch_larger_than_its_cache_warns_once_naming_sizes_and_setting(
    cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACACHE_TRAINING_SIZE", "1MB")
    data = Source(_tokens(4000), "too-big")  # 1 MiB of tokens, threshold 0.9 of 1 MB
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=32, shard_bytes=32 * ROW * 4)
        with pytest.warns(DatasetTooLargeWarning) as got:
            n = sum(1 for _ in dc.stream_dataset(data))
        assert n == 125
        text = str(got[0].message)
        assert "1.02 MB" in text or "1 MB" in text  # the dataset's size
        assert "caches.training.size" in text and "LLAMACACHE_TRAINING_SIZE" in text
        with pytest.raises(NotCachedError):  # not marked complete: it is not
            dc.get_dataset(dc.dataset_key(data))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second epoch does not warn again
            assert sum(1 for _ in dc.stream_dataset(data)) == 125


CHILD = """
import sys
import numpy as np
from llamacache import DatasetCache

class Data:
    cache_key = "killed"
    def __iter__(self):
        rng = np.random.default_rng(7)
        for _ in range(600):
            yield rng.integers(0, 32000, 512, dtype=np.int32)

with DatasetCache(batch_size=4, shard_bytes=5 * 4 * 512 * 4) as dc:  # 30 shards
    print("go", flush=True)
    dc.cache_dataset(Data())
    print("done", flush=True)
"""


def _expected() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 32000, 512, dtype=np.int32) for _ in range(600)]


def _run_child(kill_after: float | None) -> tuple[str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "go"
    t0 = time.perf_counter()
    with proc.stdout:
        if kill_after is None:
            out = proc.stdout.read()
            assert proc.wait(60) == 0
            return out, time.perf_counter() - t0
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
    proc.wait(60)
    return out, kill_after


def test_kill_9_while_shards_are_written_never_leaves_a_complete_looking_epoch(
    cache_root: Path,
) -> None:
    trials = TRIALS
    _, full = _run_child(None)  # how long a whole fill takes here
    expected = _expected()
    with CacheManager() as m:
        dc = DatasetCache(m, batch_size=4)
        key = dc.dataset_key(type("D", (), {"cache_key": "killed"})())
        assert _equal(list(dc.get_dataset(key)), expected)
        dc.cache.clear()
    rnd = random.Random(SEED)
    outcomes = []
    for _ in range(trials):
        out, _ = _run_child(rnd.uniform(0, full))
        with CacheManager() as m:
            dc = DatasetCache(m, batch_size=4)
            try:
                got = list(dc.get_dataset(key))
            except NotCachedError:
                outcomes.append("incomplete")
            else:  # complete-looking: then it must be whole and right
                assert _equal(got, expected)
                outcomes.append("complete")
            if outcomes[-1] == "incomplete":
                assert "done" not in out
            dc.cache.clear()
    assert len(outcomes) == trials


def _bytes_hashed(fn: Any) -> int:
    """Bytes hashed while ``fn`` runs (the cache's default checksum, xxh3).

    Observed with ``sys.setprofile`` (no function is replaced): a one-shot digest (of bytes
    or of a mapped file) is a call of ``checksums._xxh3(data)``; a file hashed in blocks is
    a call of ``files._hash_read``.
    """
    from llamacache.engine import checksums, files

    total = 0

    def prof(frame: Any, event: str, arg: Any) -> None:
        nonlocal total
        if event != "call":
            return
        code = frame.f_code
        if code is checksums._xxh3.__code__:
            total += len(memoryview(frame.f_locals["data"]).cast("B"))
        elif code is files._hash_read.__code__:
            total += frame.f_locals["st"].st_size

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return total


def test_a_fresh_read_hashes_each_shard_once(cache_root: Path) -> None:
    """Issue 16: the cache verified a shard's descriptor, then the shard reader hashed the
    same bytes again; a fresh process paid two hash passes per shard."""
    from llamacache.engine import files

    recs = _tokens(96)
    with CacheManager() as m:
        key = DatasetCache(m, batch_size=8).cache_dataset(Source(recs))
    files.forget_verified()  # as in a fresh process
    with CacheManager() as m:
        ds = DatasetCache(m, batch_size=8).get_dataset(key)
        shard_bytes = sum(s["bytes"] for s in ds.info["shards"])
        hashed = _bytes_hashed(lambda: list(ds.batches()))
    assert shard_bytes >= 96 * ROW
    assert shard_bytes <= hashed < 1.5 * shard_bytes
