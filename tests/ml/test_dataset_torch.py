"""torch records and DataLoader workers over a cached epoch (real torch, real worker processes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install 'llamacache[torch]')"
)

from torch.utils.data import DataLoader  # noqa: E402

from llamacache import CacheManager, DatasetCache  # noqa: E402
from llamacache.ml.torch_data import EpochDataset, EpochIterable  # noqa: E402


@pytest.fixture
def manager() -> Iterator[CacheManager]:
    with CacheManager() as m:
        yield m


class Source:
    def __init__(self, records: list[Any], key: str) -> None:
        self.records, self.cache_key, self.reads = records, key, 0

    def __iter__(self) -> Iterator[Any]:
        self.reads += 1
        return iter(self.records)


def _tensors(n: int) -> list[Any]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 32000, (64,), dtype=torch.int32, generator=g) for _ in range(n)]


def test_tensor_records_are_stacked_and_read_back_zero_copy(manager: CacheManager) -> None:
    dc = DatasetCache(manager, batch_size=8)
    data = Source(_tensors(50), "torch-records")
    first = list(dc.stream_dataset(data))
    assert all(isinstance(b, torch.Tensor) for b in first)
    assert first[0].shape == (8, 64) and first[-1].shape == (2, 64)
    again = list(dc.stream_dataset(data))
    assert data.reads == 1
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int32 for b in again)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    ds = dc.get_dataset(dc.dataset_key(data))
    assert ds.batch(3).data_ptr() == ds.batch(3).data_ptr()  # both views of the one map
    records = list(ds)
    assert torch.equal(records[17], data.records[17])
    dicts = [{"ids": t, "label": torch.tensor(i)} for i, t in enumerate(_tensors(10))]
    back = list(dc.get_dataset(dc.cache_dataset(dicts)))
    assert all(torch.equal(a["ids"], b["ids"]) for a, b in zip(back, dicts, strict=True))
    assert [int(r["label"]) for r in back] == list(range(10))


def _key_of(batch: Any) -> bytes:
    return bytes(np.ascontiguousarray(batch.numpy()).tobytes())


@pytest.mark.parametrize("context", ["fork", "spawn"])  # spawn: the dataset is pickled
def test_multi_worker_dataloader_yields_every_batch_exactly_once(
    manager: CacheManager, context: str
) -> None:
    rng = np.random.default_rng(2)
    records = [rng.integers(0, 32000, 128, dtype=np.int32) for _ in range(400)]
    dc = DatasetCache(manager, batch_size=8, shard_bytes=7 * 8 * 128 * 4)  # 8 shards
    data = Source(records, "loader")
    epoch1 = [b.copy() for b in dc.stream_dataset(data)]
    key = dc.dataset_key(data)
    assert len(dc.get_dataset(key).info["shards"]) == 8
    loader = DataLoader(
        EpochIterable(dc, key), batch_size=None, num_workers=2, multiprocessing_context=context
    )
    got = list(loader)
    assert all(isinstance(b, torch.Tensor) for b in got)
    assert Counter(map(_key_of, got)) == Counter(b.tobytes() for b in epoch1)
    assert len(got) == len(epoch1) == 50
    mapped = DataLoader(EpochDataset(dc, key), batch_size=None, num_workers=2, shuffle=True)
    assert Counter(map(_key_of, mapped)) == Counter(b.tobytes() for b in epoch1)
    assert data.reads == 1


def test_an_epoch_without_shards_also_feeds_a_dataloader(manager: CacheManager) -> None:
    dc = DatasetCache(manager, batch_size=4)
    recs = [{"ids": np.full(3, i, np.int64), "text": f"r{i}"} for i in range(10)]
    key = dc.cache_dataset(recs)
    assert not dc.get_dataset(key).info["shards"]  # text fields: one entry per batch
    got = list(DataLoader(EpochIterable(dc, key), batch_size=None, num_workers=2))
    ids = sorted(int(x) for b in got for x in b["ids"][:, 0])
    assert ids == list(range(10))
    assert sorted(t for b in got for t in b["text"]) == [f"r{i}" for i in range(10)]
