"""DatasetCache: the seed's ``cache_dataset`` / ``get_dataset`` / ``stream_dataset`` on the
``training`` cache.

A dataset's key derives from its identity (a ``cache_key``/``fingerprint`` attribute, else a
content hash of an array or sequence) plus the preprocessing function's identity (qualified
name, bytecode, constants, defaults, closure) and the batch size, so a changed
``preprocess_fn`` never serves stale batches.

Batches of arrays (numpy, or torch tensors when torch is installed; alone or as dict/tuple
fields) are stored in large shard files ``ds:{key}/shard/{n}`` (see ``shards``) that a reader
maps and serves as views; other batches live one per entry under ``ds:{key}/{index}``. An
epoch whose batches stop fitting the shard layout keeps its shards for the first batches and
stores the rest one per entry. The marker ``ds:{key}/complete`` is written LAST, after every
shard and batch is durably stored and checked to be still present, so an interrupted (or
killed) first epoch is never served as complete (its partial entries are removed when the
process can; after a kill they are ordinary entries that eviction and ``clean`` reclaim).

Threads: serving from cache, a reader thread fetches up to ``prefetch`` batches ahead;
filling, a writer thread takes up to ``batch_buffer`` batches so the consumer never waits for
disk writes. Both queues are bounded and both threads stop when the consumer stops early.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from llamacache.engine.tiered import TieredCache
from llamacache.errors import CorruptEntryError, UsageError
from llamacache.manager import CacheManager
from llamacache.ml.batches import batch_len, collate, uncollate, unpack
from llamacache.ml.epoch import DatasetTooLargeWarning, EpochWriter, batch_key, shard_key
from llamacache.ml.identity import dataset_identity, function_identity
from llamacache.ml.model import NotCachedError
from llamacache.ml.shards import SHARD_BYTES, Shard, ShardCorrupt

DEFAULT_BATCH_SIZE = 32  # records per batch unless the constructor is told otherwise
KEY_VERSION = 2  # bump when the batch layout or the fingerprint changes: old keys then miss
_DONE = object()

__all__ = ["CachedDataset", "DatasetCache", "DatasetTooLargeWarning"]


class CachedDataset:
    """A cached dataset's records, read batch by batch (only one batch in memory at a time)."""

    def __init__(self, owner: DatasetCache, key: str, info: dict[str, Any]) -> None:
        self._owner, self.key, self.info = owner, key, info
        self._open: dict[int, Shard] = {}  # shards mapped by __getitem__/batch()

    def __len__(self) -> int:
        return int(self.info["records"])

    @property
    def num_batches(self) -> int:
        """Batches in the epoch."""
        return int(self.info["batches"])

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """Batches ``start``..``stop-1`` in order (shards are mapped only when reached)."""
        stop = self.num_batches if stop is None else min(stop, self.num_batches)
        return self._owner._serve(self.key, self.info, start, stop)

    def batch(self, i: int) -> Any:
        """Batch ``i`` (a view into a mapped shard when the epoch is sharded)."""
        return self._owner._read_batch(self.key, self.info, i, self._open)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from uncollate(batch)

    def __getitem__(self, i: int) -> Any:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        size = int(self.info["batch_size"])
        return uncollate(self.batch(i // size))[i % size]


class DatasetCache:
    """Datasets in the ``training`` cache, batched ``batch_size`` records at a time (32).

    ``shard_bytes`` bounds one shard file (256 MiB); while an epoch is first stored, the
    writer holds up to that many bytes of batches in memory before writing them as a shard.
    """

    def __init__(
        self,
        manager: CacheManager | None = None,
        *,
        cache: str = "training",
        batch_size: int = DEFAULT_BATCH_SIZE,
        shard_bytes: int = SHARD_BYTES,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size {batch_size} must be at least 1")
        if shard_bytes < 1:
            raise UsageError(f"shard_bytes {shard_bytes} must be at least 1")
        self._own = manager is None
        self.manager = manager if manager is not None else CacheManager()
        self.cache: TieredCache = self.manager.cache(cache)
        self.batch_size = batch_size
        self.shard_bytes = shard_bytes
        self.prefetch = max(1, self.cache.settings.prefetch)
        self.batch_buffer = max(1, self.cache.settings.batch_buffer)

    # -- keys -------------------------------------------------------------------------------

    def dataset_key(self, dataset: Any, preprocess_fn: Callable[[Any], Any] | None = None) -> str:
        """The key a dataset is cached under (cost: one hash pass over a sequence's records,
        skipped when the same object was fingerprinted before in this process)."""
        ident = f"v{KEY_VERSION}|{dataset_identity(dataset)}|{function_identity(preprocess_fn)}"
        ident += f"|bs{self.batch_size}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    @staticmethod
    def _marker(key: str) -> str:
        return f"ds:{key}/complete"

    def _info(self, key: str) -> dict[str, Any] | None:
        raw = self.cache.get(self._marker(key))
        if not isinstance(raw, str):
            return None
        info: dict[str, Any] = json.loads(raw)
        return info

    # -- the seed's API ---------------------------------------------------------------------

    def cache_dataset(
        self,
        dataset: Iterable[Any],
        preprocess_fn: Callable[[Any], Any] | None = None,
        *,
        key: str | None = None,
    ) -> str:
        """Preprocess and store every batch (unless already complete); returns the key."""
        key = key or self.dataset_key(dataset, preprocess_fn)
        if self._info(key) is None:
            for _ in self._fill(key, dataset, preprocess_fn):
                pass
        return key

    def get_dataset(self, key: str) -> CachedDataset:
        """The records of a completely cached dataset; NotCachedError otherwise."""
        info = self._info(key)
        if info is None:
            raise NotCachedError(
                f"dataset {key!r} is not (completely) in cache {self.cache.name!r}"
            )
        return CachedDataset(self, key, info)

    def stream_dataset(
        self,
        dataset: Iterable[Any],
        preprocess_fn: Callable[[Any], Any] | None = None,
        *,
        key: str | None = None,
    ) -> Iterator[Any]:
        """Yield batches: from the cache when complete, else from ``dataset`` while filling it.

        A batch missing from a "complete" dataset (evicted) makes the rest come from the
        source again, refilling the cache.
        """
        key = key or self.dataset_key(dataset, preprocess_fn)
        info = self._info(key)
        if info is None:
            yield from self._fill(key, dataset, preprocess_fn)
            return
        served = 0
        reader = self._serve(key, info, 0, int(info["batches"]))
        try:
            for batch in reader:
                yield batch
                served += 1
        except NotCachedError:
            self.cache.remove(self._marker(key))
            yield from self._fill(key, dataset, preprocess_fn, skip=served)
        finally:
            reader.close()  # stops the prefetch thread now, not when garbage is collected

    # -- reading ----------------------------------------------------------------------------

    def _shard(self, key: str, info: dict[str, Any], s: int) -> Shard:
        """Map shard ``s`` of an epoch: the descriptor the cache verified, whose entry digest
        must be the one the marker recorded (one hash pass per file identity, by the engine).

        A shard entry replaced since the marker was read (another process refilled the
        epoch) is a miss, not corruption: the stream then refills from the source. A damaged
        shard follows the cache's ``on_corrupt`` (raise, or quarantine and miss).
        """
        spec = info["shards"][s]
        skey = shard_key(key, s)
        found = self.cache.open_verified(skey, files_only=True)
        if found is None or found.handle is None:
            raise NotCachedError(f"dataset {key!r}: shard {s} is no longer cached")
        with found.handle as f:
            if found.meta.digest.hex() != spec["digest"]:
                raise NotCachedError(f"dataset {key!r}: shard {s} was replaced")
            try:
                return Shard(f.fileno(), info["layout"])
            except ShardCorrupt as exc:  # verified bytes that are no shard: a bug or a forgery
                raise CorruptEntryError(self.cache.name, skey, str(exc)) from None

    def _read_batch(self, key: str, info: dict[str, Any], i: int, shards: dict[int, Shard]) -> Any:
        for s, spec in enumerate(info.get("shards", ())):
            if spec["first"] <= i < spec["first"] + spec["count"]:
                if s not in shards:
                    shards[s] = self._shard(key, info, s)
                return shards[s].batch(i)
        bkey = batch_key(key, i)
        value = self.cache.get(bkey)
        if value is None:
            raise NotCachedError(f"dataset {key!r}: batch {i} is no longer cached")
        if isinstance(value, bytes):
            try:
                return unpack(value)
            except (ValueError, KeyError) as exc:
                raise CorruptEntryError(self.cache.name, bkey, f"bad batch: {exc}") from None
        return value

    def _serve(
        self, key: str, info: dict[str, Any], start: int, stop: int
    ) -> Generator[Any, None, None]:
        """Batches start..stop-1: sharded ones as views straight from the map (no thread:
        a hand-off would cost more than the read), the rest read ``prefetch`` ahead."""
        i = start
        for s, spec in enumerate(info.get("shards", ())):
            lo, hi = max(i, spec["first"]), min(stop, spec["first"] + spec["count"])
            if lo < hi:
                yield from self._shard(key, info, s).batches(lo, hi)
                i = hi
        if i < stop:
            yield from self._prefetched(key, info, i, stop)

    def _prefetched(
        self, key: str, info: dict[str, Any], start: int, stop: int
    ) -> Generator[Any, None, None]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop_ev = threading.Event()

        def reader() -> None:
            for i in range(start, stop):
                try:
                    item: Any = self._read_batch(key, info, i, {})
                except BaseException as exc:  # handed to the consumer, raised there
                    item = exc
                while not stop_ev.is_set():
                    try:
                        q.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop_ev.is_set() or isinstance(item, BaseException):
                    return
            q.put(_DONE)

        t = threading.Thread(target=reader, name="llamacache-prefetch", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_ev.set()
            t.join()

    # -- filling ----------------------------------------------------------------------------

    def _source_batches(
        self, dataset: Iterable[Any], fn: Callable[[Any], Any] | None
    ) -> Iterator[Any]:
        records: list[Any] = []
        for record in dataset:
            records.append(fn(record) if fn is not None else record)
            if len(records) == self.batch_size:
                yield collate(records)
                records = []
        if records:
            yield collate(records)

    def _fill(
        self,
        key: str,
        dataset: Iterable[Any],
        fn: Callable[[Any], Any] | None,
        skip: int = 0,
    ) -> Iterator[Any]:
        """Yield source batches while a writer thread stores them; marker only at the end."""
        writer = EpochWriter(self.cache, key, self.batch_buffer, self.shard_bytes)
        n = records = 0
        complete = False
        try:
            for batch in self._source_batches(dataset, fn):
                writer.put((n, batch))
                records += batch_len(batch)
                if n >= skip:
                    yield batch
                n += 1
            info = writer.finish()
            if info is not None:  # None: the epoch evicted its own batches (warned)
                info.update(batches=n, records=records, batch_size=self.batch_size)
                info["created"] = int(time.time())
                self.cache.put(self._marker(key), json.dumps(info))
            complete = True
        finally:
            if not complete:
                writer.abort()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the manager if this object made it."""
        if self._own:
            self.manager.close()

    def __enter__(self) -> DatasetCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
