"""DatasetCache: the seed's ``cache_dataset`` / ``get_dataset`` / ``stream_dataset`` on the
``training`` cache.

A dataset's key derives from its identity (a ``cache_key``/``fingerprint`` attribute, else a
content hash of an array or sequence) plus the preprocessing function's identity (qualified
name, bytecode, constants, defaults, closure) and the batch size, so a changed
``preprocess_fn`` never serves stale batches. Batches live under ``ds:{key}/{index}``; the
marker ``ds:{key}/complete`` is written LAST, so an interrupted first epoch is never served
as complete (its partial batches are removed).

Threads: serving from cache, a reader thread fetches up to ``prefetch`` batches ahead;
filling, a writer thread takes up to ``batch_buffer`` batches so the consumer never waits for
disk writes. Both queues are bounded and both threads stop when the consumer stops early.
"""

from __future__ import annotations

import contextlib
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
from llamacache.ml import batches as B
from llamacache.ml.identity import dataset_identity, function_identity
from llamacache.ml.model import NotCachedError

DEFAULT_BATCH_SIZE = 32  # records per batch unless the constructor is told otherwise
KEY_VERSION = 1  # bump when the batch layout changes: old keys then miss
_DONE = object()


class CachedDataset:
    """A cached dataset's records, read batch by batch (only one batch in memory at a time)."""

    def __init__(self, owner: DatasetCache, key: str, info: dict[str, Any]) -> None:
        self._owner, self.key, self.info = owner, key, info

    def __len__(self) -> int:
        return int(self.info["records"])

    def batches(self) -> Iterator[Any]:
        return self._owner._serve(self.key, int(self.info["batches"]))

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from B.uncollate(batch)

    def __getitem__(self, i: int) -> Any:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        size = int(self.info["batch_size"])
        return B.uncollate(self._owner._read_batch(self.key, i // size))[i % size]


class DatasetCache:
    """Datasets in the ``training`` cache, batched ``batch_size`` records at a time (32)."""

    def __init__(
        self,
        manager: CacheManager | None = None,
        *,
        cache: str = "training",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size {batch_size} must be at least 1")
        self._own = manager is None
        self.manager = manager if manager is not None else CacheManager()
        self.cache: TieredCache = self.manager.cache(cache)
        self.batch_size = batch_size
        self.prefetch = max(1, self.cache.settings.prefetch)
        self.batch_buffer = max(1, self.cache.settings.batch_buffer)
        self._stored_bytes: dict[str, int] = {}  # per dataset key, this epoch's batches
        self._warned: set[str] = set()

    # -- keys -------------------------------------------------------------------------------

    def dataset_key(self, dataset: Any, preprocess_fn: Callable[[Any], Any] | None = None) -> str:
        """The key a dataset is cached under (cost: one pass over a sequence to hash it)."""
        ident = f"v{KEY_VERSION}|{dataset_identity(dataset)}|{function_identity(preprocess_fn)}"
        ident += f"|bs{self.batch_size}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    @staticmethod
    def _batch_key(key: str, i: int) -> str:
        return f"ds:{key}/{i:08d}"

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
        reader = self._serve(key, int(info["batches"]))
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

    def _read_batch(self, key: str, i: int) -> Any:
        bkey = self._batch_key(key, i)
        value = self.cache.get(bkey)
        if value is None:
            raise NotCachedError(f"dataset {key!r}: batch {i} is no longer cached")
        if isinstance(value, bytes):
            try:
                return B.unpack(value)
            except (ValueError, KeyError) as exc:
                raise CorruptEntryError(self.cache.name, bkey, f"bad batch: {exc}") from None
        return value

    def _serve(self, key: str, n: int) -> Generator[Any, None, None]:
        """Batches 0..n-1, read ``prefetch`` ahead on a thread that stops when we do."""
        q: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def reader() -> None:
            for i in range(n):
                try:
                    item: Any = self._read_batch(key, i)
                except BaseException as exc:  # handed to the consumer, raised there
                    item = exc
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or isinstance(item, BaseException):
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
            stop.set()
            t.join()

    # -- filling ----------------------------------------------------------------------------

    def _source_batches(
        self, dataset: Iterable[Any], fn: Callable[[Any], Any] | None
    ) -> Iterator[Any]:
        records: list[Any] = []
        for record in dataset:
            records.append(fn(record) if fn is not None else record)
            if len(records) == self.batch_size:
                yield B.collate(records)
                records = []
        if records:
            yield B.collate(records)

    def _store(self, key: str, i: int, batch: Any) -> None:
        import sys

        np = sys.modules.get("numpy")
        value = batch if np is not None and isinstance(batch, np.ndarray) else B.pack(batch)
        self.cache.put(self._batch_key(key, i), value)
        size = int(value.nbytes) if hasattr(value, "nbytes") else len(value)
        self._stored_bytes[key] = self._stored_bytes.get(key, 0) + size

    def _fill(
        self,
        key: str,
        dataset: Iterable[Any],
        fn: Callable[[Any], Any] | None,
        skip: int = 0,
    ) -> Iterator[Any]:
        """Yield source batches while a writer thread stores them; marker only at the end."""
        writer = _Writer(self, key)
        self._stored_bytes[key] = 0
        n = records = 0
        complete = False
        try:
            for batch in self._source_batches(dataset, fn):
                writer.put((n, batch))
                records += B.batch_len(batch)
                if n >= skip:
                    yield batch
                n += 1
            writer.finish()
            self._check_fits(key, n)
            info = {"batches": n, "records": records, "batch_size": self.batch_size}
            info["created"] = int(time.time())
            self.cache.put(self._marker(key), json.dumps(info))
            complete = True
        finally:
            if not complete:
                writer.abort()
                for i in range(n + 1):  # a partial epoch must not linger as if it were data
                    self.cache.remove(self._batch_key(key, i))

    def _check_fits(self, key: str, batches: int) -> None:
        """Warn once when storing an epoch evicted its own first batch: the dataset does not
        fit, so every epoch is preprocessed again (slower than no cache at all)."""
        if not batches or key in self._warned:
            return
        if self.cache.disk.describe(self._batch_key(key, 0)) is not None:
            return
        import warnings

        from llamacache._config_schema import cache_env
        from llamacache.units import format_size

        self._warned.add(key)
        s = self.cache.settings
        warnings.warn(
            f"dataset {key!r} ({format_size(self._stored_bytes.get(key, 0))} in {batches} "
            f"batches) does not fit cache {s.name!r} "
            f"({format_size(int(s.eviction_threshold * s.disk_size))} usable of "
            f"{format_size(s.disk_size)}): storing an epoch evicted its own first batches, so "
            f"every epoch is preprocessed again; raise caches.{s.name}.size "
            f"({cache_env(s.name, 'size')})",
            RuntimeWarning,
            stacklevel=3,
        )

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the manager if this object made it."""
        if self._own:
            self.manager.close()

    def __enter__(self) -> DatasetCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Writer:
    """A thread storing ``(index, batch)`` items from a queue of ``batch_buffer`` slots."""

    def __init__(self, owner: DatasetCache, key: str) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=owner.batch_buffer)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._owner, self._key = owner, key
        self._t = threading.Thread(target=self._run, name="llamacache-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE or self._stop.is_set():
                return
            try:
                self._owner._store(self._key, *item)
            except BaseException as exc:  # handed to the consumer, raised there
                self._errors.append(exc)
                return

    def put(self, item: Any) -> None:
        """Queue a batch; raises the writer's error if it failed (never blocks on a dead one)."""
        while True:
            if self._errors:
                raise self._errors[0]
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every queued batch is stored; raises the writer's error."""
        self.put(_DONE)
        self._t.join()
        if self._errors:
            raise self._errors[0]

    def abort(self) -> None:
        """Stop without storing what is still queued."""
        self._stop.set()
        while self._t.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get_nowait()
            with contextlib.suppress(queue.Full):
                self._q.put_nowait(_DONE)
            self._t.join(timeout=0.05)
