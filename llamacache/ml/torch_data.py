"""A cached epoch as a ``torch.utils.data`` dataset (needs the ``torch`` extra).

``EpochIterable`` is an ``IterableDataset`` of batches for ``DataLoader(batch_size=None,
num_workers=N)``: worker ``w`` of ``N`` reads the contiguous range of batches
``[w*B/N, (w+1)*B/N)``, so each worker maps only the shards that range touches and every batch
comes out exactly once. ``EpochDataset`` is the map-style equivalent (``dataset[i]`` is batch
``i``) for samplers that shuffle batch order. Batches are tensors made with
``torch.from_numpy`` over the mapped shard (no copy); batches stored one per entry (records
that are not arrays) are converted as they are.

A worker never uses the parent's open cache (its SQLite connections must not cross a fork):
it opens its own, from the same resolved settings, the first time it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from llamacache.manager import CacheManager
from llamacache.ml.dataset import CachedDataset, DatasetCache


def _to_torch(batch: Any) -> Any:
    """numpy leaves -> tensors (a copy only when the array is read-only, to keep torch quiet)."""
    if isinstance(batch, dict):
        return {k: _to_torch(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_to_torch(v) for v in batch)
    np = __import__("numpy")
    if isinstance(batch, np.ndarray) and not batch.dtype.hasobject:
        return torch.from_numpy(batch if batch.flags.writeable else batch.copy())
    return batch


class _Epoch:
    """What a worker needs to reopen one epoch in its own process."""

    def __init__(self, dc: DatasetCache, key: str) -> None:
        ds = dc.get_dataset(key)  # NotCachedError now, not in a worker later
        self.settings = dc.manager.settings
        self.cache, self.batch_size, self.key = dc.cache.name, dc.batch_size, key
        self.info = {**ds.info, "layout": {**(ds.info.get("layout") or {}), "torch": True}}
        self.num_batches = ds.num_batches
        self._pid = os.getpid()
        self._ds: CachedDataset | None = CachedDataset(dc, key, self.info)
        self._manager: CacheManager | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ds": None, "_manager": None}

    def dataset(self) -> CachedDataset:
        if self._ds is None or self._pid != os.getpid():
            self._manager = CacheManager(self.settings)
            dc = DatasetCache(self._manager, cache=self.cache, batch_size=self.batch_size)
            self._ds, self._pid = CachedDataset(dc, self.key, self.info), os.getpid()
        return self._ds


class EpochIterable(IterableDataset[Any]):
    """Every batch of a cached epoch once, split between DataLoader workers by range."""

    def __init__(self, dc: DatasetCache, key: str) -> None:
        self._epoch = _Epoch(dc, key)

    def __len__(self) -> int:
        return self._epoch.num_batches

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        w, n = (0, 1) if info is None else (info.id, info.num_workers)
        total = self._epoch.num_batches
        lo, hi = w * total // n, (w + 1) * total // n
        for batch in self._epoch.dataset().batches(lo, hi):
            yield _to_torch(batch)


class EpochDataset(Dataset[Any]):
    """Batch ``i`` of a cached epoch as ``dataset[i]`` (shards mapped once per worker)."""

    def __init__(self, dc: DatasetCache, key: str) -> None:
        self._epoch = _Epoch(dc, key)

    def __len__(self) -> int:
        return self._epoch.num_batches

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return _to_torch(self._epoch.dataset().batch(i))
