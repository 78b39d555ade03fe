"""DatasetCache on a real training cache: epochs, keys, prefetch threads, interrupted fills."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import safetensors.numpy

from llamacache import CacheManager, DatasetCache
from llamacache.engine import framing
from llamacache.errors import UsageError
from llamacache.ml import NotCachedError


@pytest.fixture
def manager() -> Iterator[CacheManager]:
    with CacheManager() as m:
        yield m


@pytest.fixture
def dc(manager: CacheManager) -> DatasetCache:
    return DatasetCache(manager, batch_size=8)


class Counting:
    """A dataset with a cache_key that counts how often it is read."""

    def __init__(self, records: list[Any], key: str = "counting-v1") -> None:
        self.records, self.cache_key, self.reads = records, key, 0

    def __iter__(self) -> Iterator[Any]:
        self.reads += 1
        return iter(self.records)


def _tokens(n: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.zipf(1.3, 64).clip(0, 31999).astype(np.int32) for _ in range(n)]


def _threads() -> set[str]:
    """Stream threads still alive (the one per-process metrics ticker is not a stream's)."""
    return {
        t.name
        for t in threading.enumerate()
        if t.name.startswith("llamacache-") and t.name != "llamacache-metrics"
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return bool(a == b) and type(a) is type(b)


def test_second_epoch_is_served_from_cache_with_identical_batches(dc: DatasetCache) -> None:
    data = Counting(_tokens())
    first = list(dc.stream_dataset(data))
    second = list(dc.stream_dataset(data))
    assert data.reads == 1  # the second epoch never touched the source
    assert len(first) == 7 and first[0].shape == (8, 64) and first[-1].shape == (2, 64)
    assert _same(first, second)
    assert not _threads()


def test_token_batches_are_stored_as_one_raw_safetensors_shard(dc: DatasetCache) -> None:
    records = _tokens()
    key = dc.cache_dataset(Counting(records))
    assert f"ds:{key}/00000000" not in dc.cache  # no per-batch entries for array batches
    tag = dc.cache.disk.locate(f"ds:{key}/shard/00000")
    assert tag is not None and tag[1] is not None  # a file-backed entry
    meta = framing.parse_meta(tag[0])
    assert meta.kind == "rawfile" and meta.codec == "none"  # mappable: stored raw
    path = dc.cache.get_path(f"ds:{key}/shard/00000")
    assert path is not None
    loaded = safetensors.numpy.load_file(str(path))  # a standard safetensors file
    assert sorted(loaded) == [f"{i:08d}" for i in range(7)]
    assert (loaded["00000006"] == np.stack(records[48:])).all()


def test_changed_preprocess_fn_is_a_miss(dc: DatasetCache) -> None:
    data = Counting(list(range(20)))

    def double(x: int) -> int:
        return x * 2

    assert list(dc.stream_dataset(data, double))[0] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert data.reads == 1

    def double(x: int) -> int:  # noqa: F811 (same name, new body: a new key)
        return x * 3

    assert list(dc.stream_dataset(data, double))[0][1] == 3
    assert data.reads == 2
    assert dc.dataset_key(data, functools.partial(pow, 2)) != dc.dataset_key(
        data, functools.partial(pow, 3)
    )


def test_content_hash_keys_sequences(dc: DatasetCache) -> None:
    a = _tokens(10)
    b = [x.copy() for x in a]
    assert dc.dataset_key(a) == dc.dataset_key(b)
    b[3][0] += 1
    assert dc.dataset_key(a) != dc.dataset_key(b)
    with pytest.raises(UsageError, match="cache_key"):
        dc.dataset_key(iter(a))


def test_records_of_every_kind_round_trip(dc: DatasetCache) -> None:
    records: list[Any] = [
        {"ids": np.arange(4, dtype=np.int32) + i, "label": i, "text": f"t{i}", "raw": b"x" * i}
        for i in range(11)
    ]
    key = dc.cache_dataset(records)
    back = list(dc.get_dataset(key))
    assert _same(back, records)
    assert len(dc.get_dataset(key)) == 11
    assert _same(dc.get_dataset(key)[9], records[9])
    tuples = [(np.ones(2) * i, i) for i in range(5)]
    assert _same(list(dc.get_dataset(dc.cache_dataset(tuples))), tuples)
    blobs = [b"a", b"bb", b"ccc"]
    assert list(dc.get_dataset(dc.cache_dataset(blobs))) == blobs


def test_consumer_breaking_early_stops_the_prefetch_thread(manager: CacheManager) -> None:
    dc = DatasetCache(manager, batch_size=1)
    data = Counting([{"ids": r, "text": "x"} for r in _tokens(40)])  # per-entry batches
    dc.cache_dataset(data)
    stream = dc.stream_dataset(data)
    next(stream)
    time.sleep(0.05)  # let the reader fill its bounded queue and block on it
    assert "llamacache-prefetch" in _threads()
    for _ in stream:
        break
    stream.close()
    assert not _threads()


def test_interrupted_first_epoch_is_not_served_as_complete(dc: DatasetCache) -> None:
    data = Counting(_tokens())
    stream = dc.stream_dataset(data)
    next(stream)
    next(stream)
    stream.close()  # the consumer stopped half-way
    assert not _threads()
    key = dc.dataset_key(data)
    with pytest.raises(NotCachedError):
        dc.get_dataset(key)
    assert not any(str(k).startswith(f"ds:{key}/") for k in dc.cache.disk.iter_keys())
    assert len(list(dc.stream_dataset(data))) == 7
    assert data.reads == 2
    assert len(dc.get_dataset(key)) == 50


def test_source_failure_midway_leaves_nothing(dc: DatasetCache) -> None:
    class Broken:
        cache_key = "broken"

        def __iter__(self) -> Iterator[int]:
            yield from range(20)
            raise OSError("disk went away")

    with pytest.raises(OSError):
        dc.cache_dataset(Broken())
    assert len(dc.cache) == 0
    assert not _threads()


@pytest.mark.parametrize("evict", ["ds:{key}/shard/00001", "ds:{key}/00000004"])
def test_evicted_batch_falls_back_to_the_source(manager: CacheManager, evict: str) -> None:
    dc = DatasetCache(manager, batch_size=8, shard_bytes=2 * 8 * 64 * 4)  # 2 batches a shard
    records: list[Any] = _tokens()
    if "shard" not in evict:
        records = [{"ids": r, "text": "x"} for r in records]  # not shardable: one per entry
    data = Counting(records)
    first = list(dc.stream_dataset(data))
    key = dc.dataset_key(data)
    assert dc.cache.remove(evict.format(key=key))
    again = list(dc.stream_dataset(data))
    assert _same(first, again)
    assert data.reads == 2
    assert len(list(dc.get_dataset(key))) == 50  # refilled and complete again


def test_no_argument_constructor(cache_root: Any) -> None:
    with DatasetCache(batch_size=2) as dc:
        key = dc.cache_dataset([1, 2, 3])
        assert list(dc.get_dataset(key)) == [1, 2, 3]
    assert (cache_root / "training").is_dir()
