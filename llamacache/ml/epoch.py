"""Storing one epoch: a writer thread that packs array batches into shards, the rest into
one entry per batch, and reports what the completion marker must list.

The consumer hands batches over a queue of ``batch_buffer`` slots and never waits for the
disk. Shards are written with ``TieredCache.put_file`` (temp file, fsync, rename, then
indexed), so a kill at any point leaves whole shards or none, never a torn one; the marker
that makes an epoch "complete" is the caller's last write.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import warnings
from typing import Any, BinaryIO, cast

from llamacache.config import units
from llamacache.config.schema import cache_env
from llamacache.engine.tiered import TieredCache
from llamacache.ml import batches, shards

_DONE = object()
_WARNED: set[tuple[str, str]] = set()  # (cache directory, dataset key): warned once


class DatasetTooLargeWarning(UserWarning):
    """A dataset's batches did not fit its cache: the epoch evicted its own batches."""


def batch_key(key: str, i: int) -> str:
    """The entry of batch ``i`` when it is not in a shard."""
    return f"ds:{key}/{i:08d}"


def shard_key(key: str, s: int) -> str:
    """The file entry of shard ``s`` (keys derive from the dataset's key, its fingerprint)."""
    return f"ds:{key}/shard/{s:05d}"


class EpochWriter:
    """A thread storing ``(index, batch)`` items; ``finish`` returns the marker's fields."""

    def __init__(self, cache: TieredCache, key: str, slots: int, shard_bytes: int) -> None:
        self.cache, self.key, self.shard_bytes = cache, key, shard_bytes
        self._q: queue.Queue[Any] = queue.Queue(maxsize=slots)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.shards: list[dict[str, Any]] = []
        self.layout: dict[str, Any] | None = None
        self._building: shards.ShardBuilder | None = shards.ShardBuilder()  # None: no more shards
        self.loose: list[int] = []  # batches stored one per entry
        self.stored_bytes = 0
        self._t = threading.Thread(target=self._run, name="llamacache-writer", daemon=True)
        self._t.start()

    # -- on the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE or self._stop.is_set():
                if item is _DONE and not self._stop.is_set():
                    self._guard(self._flush)
                return
            if not self._guard(self._store, *item):
                return

    def _guard(self, fn: Any, *args: Any) -> bool:
        try:
            fn(*args)
            return True
        except BaseException as exc:  # handed to the consumer, raised there
            self._errors.append(exc)
            return False

    def _store(self, i: int, batch: Any) -> None:
        b = self._building
        if b is not None:
            got = shards.split(batch)
            if got is not None and self.layout in (None, got[0]):
                self.layout = got[0]
                size = sum(a.nbytes for _, a in got[1])
                if b.count and b.size + size > self.shard_bytes:
                    self._flush()
                    b = self._building = shards.ShardBuilder()
                b.add(i, got[1])
                return
            self._flush()  # this batch does not fit the layout: the rest go one per entry
            self._building = None
        np = sys.modules.get("numpy")
        value = batch if np is not None and isinstance(batch, np.ndarray) else batches.pack(batch)
        self.cache.put(batch_key(self.key, i), value)
        self.loose.append(i)
        self.stored_bytes += value.nbytes if not isinstance(value, bytes) else len(value)

    def _flush(self) -> None:
        b = self._building
        if b is None or not b.count:
            return
        source = cast(BinaryIO, b.reader())
        meta = self.cache.put_file(shard_key(self.key, len(self.shards)), source)
        self.shards.append(
            {
                "first": b.first,
                "count": b.count,
                "bytes": meta.raw_len,
                "checksum": meta.checksum,
                "digest": meta.digest.hex(),
            }
        )
        self.stored_bytes += meta.raw_len

    # -- on the consumer's thread -----------------------------------------------------------

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

    def finish(self) -> dict[str, Any] | None:
        """Wait until everything is stored; the marker's fields, or None (and a warning,
        once) when the epoch's own entries were evicted while it was written."""
        self.put(_DONE)
        self._t.join()
        if self._errors:
            raise self._errors[0]
        keys = [shard_key(self.key, s) for s in range(len(self.shards))]
        keys += [batch_key(self.key, i) for i in self.loose]
        if all(k in self.cache for k in keys):
            return {"shards": self.shards, "layout": self.layout}
        self._warn_too_large()
        return None

    def _warn_too_large(self) -> None:
        s = self.cache.settings
        seen = (str(s.path), self.key)
        if seen in _WARNED:
            return
        _WARNED.add(seen)
        warnings.warn(
            DatasetTooLargeWarning(
                f"dataset {self.key}: its batches ({units.format_size(self.stored_bytes)}) do "
                f"not fit cache {s.name!r} ({units.format_size(s.disk_size)} at eviction "
                f"threshold {s.eviction_threshold:g}); the epoch evicted its own batches, so "
                f"every epoch reads the source again. Raise caches.{s.name}.size "
                f"({cache_env(s.name, 'size')})"
            ),
            stacklevel=4,
        )

    def abort(self) -> None:
        """Stop without storing what is still queued and remove what was stored."""
        self._stop.set()
        while self._t.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get_nowait()
            with contextlib.suppress(queue.Full):
                self._q.put_nowait(_DONE)
            self._t.join(timeout=0.05)
        for s in range(len(self.shards) + 1):  # a partial epoch must not linger as data
            self.cache.remove(shard_key(self.key, s))
        for i in self.loose:
            self.cache.remove(batch_key(self.key, i))
