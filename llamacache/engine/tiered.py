"""TieredCache: the object callers use for one named cache — memory front, disk, lower tiers.

Reads go memory -> disk -> lower tiers (the network tier); a hit below fills the
tiers above. Writes go through to disk (and lower tiers), then memory. Arrays come
back read-only and pickled objects are only promoted into memory from a decode, so the
memory front never aliases an object the caller still holds and may mutate.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, BinaryIO

from llamacache.engine import checksums, framing, quarantine
from llamacache.engine.disk import DiskTier, VerifiedEntry
from llamacache.engine.memory import MemoryFront
from llamacache.engine.protocol import CacheTier, ChunkMissing, TierStats
from llamacache.engine.safety import ensure_private_dir, is_network_fs
from llamacache.errors import CorruptEntryError, LlamacacheError, UnsafeCacheDirError, UsageError
from llamacache.metrics import CacheMetrics
from llamacache.settings import MAX_DURATION, CacheSettings

_MISS: Any = object()
_STALE_MAX = 100_000  # invalidation marks kept for keys whose disk copy is stale


@dataclass(frozen=True)
class CleanupResult:
    """What one ``cleanup()`` removed, and where the disk tier stands afterwards."""

    cache: str
    expired: int
    expired_bytes: int
    evicted: int
    evicted_bytes: int
    memory_expired: int
    used_bytes: int
    limit_bytes: int  # eviction_threshold x disk_size
    over_limit: bool  # still above it (policy "none", or eviction could not free enough)


def check_ttl(ttl: float) -> None:
    """UsageError unless ``0 <= ttl <= 100 years`` (NaN, infinities and 1e300 included)."""
    if not 0 <= ttl <= MAX_DURATION:  # NaN fails every comparison
        raise UsageError(f"ttl {ttl!r} is out of range; expected 0 to {MAX_DURATION:.0f} seconds")


class _Packed:
    """A value kept compressed in the memory front (``cache.memory.compression = true``).

    More entries fit in RAM; a hit pays a decompress (and the checksum check) instead
    of a disk read. Only values whose stored form is compressed are kept this way.
    """

    __slots__ = ("meta", "payload")

    def __init__(self, meta: bytes, payload: bytes) -> None:
        self.meta, self.payload = meta, payload


def _memory_size(value: Any, payload_len: int) -> int:
    t = type(value)
    if t is bytes or t is str:
        return len(value)
    nbytes = getattr(value, "nbytes", None)
    return nbytes if isinstance(nbytes, int) else payload_len


class TieredCache:
    """One named cache. Thread-safe; many processes may share its directory.

    Raises UnsafeCacheDirError for a directory others can write (or on a network
    filesystem without ``allow_network_fs``), CorruptEntryError on a damaged entry
    (unless ``on_corrupt == "miss"``), DiskFullError / ReadOnlyCacheError on I/O failure.
    """

    def __init__(
        self, settings: CacheSettings, lower: Sequence[CacheTier] = (), *, metrics: bool = True
    ) -> None:
        path = ensure_private_dir(settings.path)
        if not settings.allow_network_fs and is_network_fs(path):
            raise UnsafeCacheDirError(
                f"cache {settings.name!r}: {path} is on a network filesystem where SQLite "
                "locking is unsafe; set allow_network_fs = true to use it anyway"
            )
        self.settings = settings
        self.name = settings.name
        # One policy per cache: the memory front evicts in the disk tier's order, from the
        # same threshold, and sweeps expired entries every [cache.memory] cleanup_interval.
        self.memory = MemoryFront(
            settings.memory_size,
            settings.max_items,
            settings.policy,
            settings.eviction_threshold,
            settings.memory_cleanup_interval,
        )
        self.disk = DiskTier(settings)
        self.lower: list[CacheTier] = list(lower)  # e.g. a network tier, consulted after disk
        self._track = self.disk.policy.track_access
        self._ttl = settings.max_age if settings.policy == "time" else None
        self.corrupt = 0
        self._packs = settings.memory_compression  # keep compressed values packed in RAM
        # keys another process changed in a lower (shared) tier: the disk copy is stale
        self._stale: dict[Hashable, None] = {}
        for tier in self.lower:
            bind = getattr(tier, "bind_front", None)
            if bind is not None:
                bind(self._invalidated, self.memory.clear)

        # Counters flushed to cache.db (metrics.py); off only to measure what they cost.
        self._sampling = False  # set by the metrics ticker for a window of timed gets
        self.metrics: CacheMetrics | None = CacheMetrics(self) if metrics else None

    def _invalidated(self, key: Hashable) -> None:
        """Another process wrote ``key`` to a shared tier: drop our copies (listener thread)."""
        self.memory.discard(key)
        if len(self._stale) >= _STALE_MAX:
            self._stale.clear()  # bounded; the oldest marks go first
        self._stale[key] = None

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``, or ``default``. Memory hit ~0.3 us; disk hit decodes + promotes.

        Metrics cost one flag test here: the tiers count hits and misses themselves, and
        only while the metrics ticker has a sampling window open is a get timed.
        """
        if self._sampling:
            return self._timed_get(key, default)
        value = self.memory.get(key, _MISS)
        if value is not _MISS:
            if self._track:
                self.disk.note_hit(key)
            if self._packs and type(value) is _Packed:
                return self._unpack(key, value, default)
            return value
        return self._get_below(key, default)

    def _unpack(self, key: Hashable, packed: _Packed, default: Any) -> Any:
        try:
            return framing.decode(packed.meta, packed.payload, self.name, key)
        except CorruptEntryError as exc:  # RAM went bad, or a bug: never serve it
            self.memory.discard(key)
            return self._corrupt(exc, key, default)

    def _remember(
        self, key: Hashable, meta: bytes, payload: Any, value: Any, ttl: float | None = None
    ) -> bool:
        """Keep a compressed value packed in memory when memory compression is on."""
        if not self._packs or framing.parse_meta(meta).codec == "none":
            return False
        packed = _Packed(bytes(meta), bytes(payload))
        size = len(packed.meta) + len(packed.payload)
        if size <= self.memory.max_value:
            self.memory.put(key, packed, size, self._expiry(ttl))
        return True

    def start_sampling(self) -> None:
        """Time the next gets (the metrics ticker's sampling window)."""
        self._sampling = True

    def _timed_get(self, key: Hashable, default: Any) -> Any:
        metrics = self.metrics
        self._sampling = False
        t0 = perf_counter()
        value = self.get(key, default)
        elapsed = perf_counter() - t0
        if metrics is not None:
            metrics.get_latency.observe(elapsed, metrics.weight)
            metrics.window_left -= 1
            self._sampling = metrics.window_left > 0
        return value

    def check_memory_pressure(self) -> int:
        """Shrink the memory front if the machine is short of memory; returns evictions.

        Called by the metrics ticker every FLUSH_SECONDS and by ``cleanup()``: one psutil
        call, never per get.
        """
        from llamacache.resources import relieve_pressure

        return relieve_pressure(
            self.memory, self.settings.memory_size, self.settings.pressure_floor
        )

    def _get_below(self, key: Hashable, default: Any) -> Any:
        stale = self._stale.pop(key, 0) is None if self._stale else False
        try:
            found = None if stale else self.disk.get(key)
        except CorruptEntryError as exc:  # a value file that is a link, a FIFO, gone...
            return self._corrupt(exc, key, default)
        shared = False
        if found is None:
            # A lower (shared) tier checks what it hands over; a record it rejects is a miss.
            found = self._get_lower(key)
            shared = found is not None
            if found is None and stale:  # shared tier unreachable or entry gone: local copy
                found = self.disk.get(key)
            if found is None:
                return default
        meta, payload = found
        try:
            value = framing.decode(meta, payload, self.name, key)
        except framing.StaleEntryError:  # an older format: a miss until the next put
            return default
        except CorruptEntryError as exc:
            if shared:  # bytes from elsewhere: drop our copy of them, never the shared record
                self.corrupt += 1
                self.disk.remove(key)
                return default
            return self._corrupt(exc, key, default)
        if self._remember(key, meta, payload, value):
            return value
        if len(payload) <= self.memory.max_value:
            self.memory.put(key, value, _memory_size(value, len(payload)), self._expiry())
        return value

    def _get_lower(self, key: Hashable, read: bool = True) -> tuple[bytes, bytes] | None:
        """Fetch from lower tiers, backfilling disk (and tiers above the one that hit).

        A streaming tier writes a large value to a disk file chunk by chunk; ``read=False``
        (for ``get_path``/``open``) then skips reading it back into memory.
        """
        for i, tier in enumerate(self.lower):
            stream = getattr(tier, "open_stream", None)
            if stream is None:
                found = tier.get(key)
                if found is None:
                    continue
                self.disk.put(key, *found)
            else:
                got = stream(key)
                if got is None:
                    continue
                meta, total, parts = got
                try:
                    if total < self.settings.file_threshold:  # small: keep it, skip a re-read
                        found = (meta, b"".join(parts))
                        self.disk.put(key, *found)
                    else:
                        self.disk.put_stream(key, meta, total, parts)
                        if not read:
                            return meta, b""
                        found = self.disk.get(key)
                except ChunkMissing:  # counted by the tier; try the next one
                    continue
                if found is None:
                    continue
            for upper in self.lower[:i]:
                upper.put(key, *found)
            return found
        return None

    def _corrupt(self, exc: CorruptEntryError, key: Hashable, default: Any) -> Any:
        """Count it; with ``on_corrupt == "miss"`` quarantine the entry and miss, else raise."""
        self.corrupt += 1
        if self.settings.on_corrupt != "miss":
            raise exc
        if self.disk.read_only:  # nothing can be moved or removed: just miss
            self.memory.discard(key)
            return default
        found = self.disk.locate(key)
        if found is not None:
            _, path, inline = found
            # a copy that cannot be kept (read-only, disk full) must still never be served
            with contextlib.suppress(OSError):
                quarantine.store(self.disk.directory, key, exc.reason, file=path, inline=inline)
        self.memory.discard(key)  # local damage is local: the shared record stays
        self.disk.remove(key)
        return default

    def _expiry(self, ttl: float | None = None) -> float | None:
        ttl = ttl if ttl is not None else self._ttl
        return None if ttl is None else time.time() + ttl

    def get_path(self, key: Hashable) -> Path | None:
        """Path of a file-backed entry whose file is exactly the value's bytes (for mmap).

        Verified: the first call after the file changes (new inode, size, mtime or ctime)
        pays one hash pass; later calls in this process cost a lookup and an fstat. The
        file must not be written to; another process's put replaces it with a new file.
        """
        found = self.open_verified(key, files_only=True)
        if found is None or found.handle is None:
            return None
        found.handle.close()
        return found.path

    def open_verified(self, key: Hashable, files_only: bool = False) -> VerifiedEntry | None:
        """The entry's payload as an open, verified file (``DiskTier.open_verified``) or None.

        Fetches from a lower tier when the disk misses; a damaged entry follows
        ``on_corrupt`` (raise, or quarantine and miss); an older format is a miss.
        """
        try:
            found = self.disk.open_verified(key, files_only)
            if found is None and self.lower and self._get_lower(key, read=False) is not None:
                found = self.disk.open_verified(key, files_only)
        except framing.StaleEntryError:
            return None
        except CorruptEntryError as exc:
            return self._corrupt(exc, key, None)  # type: ignore[no-any-return]
        return found

    def open(self, key: Hashable) -> BinaryIO | None:
        """A binary reader over a bytes/str/raw-file entry, verified before the first byte.

        The digest is checked before the reader is returned (once per file identity, see
        ``get_path``) and again at EOF. Other kinds: UsageError.
        """
        found = self.open_verified(key, files_only=True)
        if found is None:
            value = self.memory.get(key, _MISS)
            if isinstance(value, (bytes, str)):
                return io.BytesIO(value.encode("utf-8") if isinstance(value, str) else value)
            return None
        if found.handle is None:
            value = self.get(key, _MISS)
            if isinstance(value, (bytes, str)):
                return io.BytesIO(value.encode("utf-8") if isinstance(value, str) else value)
            if value is _MISS:
                return None
            raise UsageError(
                f"cache {self.name!r}: entry {key!r} is a {found.meta.kind} value; "
                "use get() instead of open()"
            )
        return _VerifyingReader(found.handle, found.meta, self.name, key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.memory or self.disk.contains(key)

    def keys(self) -> Iterator[Hashable]:
        """Every key on disk (the memory front only holds copies of disk entries)."""
        return self.disk.iter_keys()

    def __len__(self) -> int:
        return self.disk.count()

    # -- writes -----------------------------------------------------------------------------

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Encode, write through to disk (and lower tiers), then keep it in memory.

        On failure nothing is left behind and the memory front no longer holds ``key``.
        """
        if self.metrics is None:
            return self._put(key, value, ttl)
        t0 = perf_counter()
        self._put(key, value, ttl)
        self.metrics.put_latency.observe(perf_counter() - t0)

    def _put(self, key: Hashable, value: Any, ttl: float | None) -> None:
        if ttl is not None:
            check_ttl(ttl)
        self.memory.discard(key)
        meta, payload = framing.encode(value, self.settings, key)
        expire = ttl if ttl is not None else self._ttl
        self.disk.put(key, meta, payload, expire)
        try:
            for tier in self.lower:
                tier.put(key, meta, payload, expire)  # type: ignore[arg-type]
        except LlamacacheError:  # write_error_policy "all": the put fails everywhere
            self.disk.remove(key)
            raise
        if self._remember(key, meta, payload, value, ttl):
            return
        t = type(value)
        if t is bytes or t is str:
            self.memory.put(key, value, len(value), self._expiry(ttl))
        elif (
            (np := sys.modules.get("numpy")) is not None
            and t is np.ndarray
            and value.nbytes <= self.memory.max_value
            and framing.plain_array(value) is not None
        ):
            frozen = np.array(value, order="C", copy=True)
            frozen.flags.writeable = False
            self.memory.put(key, frozen, frozen.nbytes, self._expiry(ttl))

    def put_file(
        self, key: Hashable, source: str | Path | BinaryIO, ttl: float | None = None
    ) -> framing.EntryMeta:
        """Store a file byte-for-byte, streamed; returns its header (digest, size)."""
        if ttl is not None:
            check_ttl(ttl)
        self.memory.discard(key)
        entry = self.disk.put_file(key, source, ttl)
        if self.lower:
            self._share_file(key, ttl)
        return entry

    def put_file_as(
        self,
        name: Callable[[bytes], Hashable],
        source: str | Path | BinaryIO,
        ttl: float | None = None,
    ) -> tuple[Hashable, framing.EntryMeta]:
        """``put_file`` under the key ``name(digest)`` (content addressing): one pass copies
        and hashes the file, then it is named. Returns the key and the header."""
        if ttl is not None:
            check_ttl(ttl)
        key, entry = self.disk.put_file_as(name, source, ttl)
        self.memory.discard(key)
        if self.lower:
            self._share_file(key, ttl)
        return key, entry

    def _share_file(self, key: Hashable, ttl: float | None) -> None:
        """Write a file entry through to lower tiers, streamed from the disk tier's file."""
        found = self.disk.locate(key)
        if found is None:
            return
        meta, path, inline = found
        try:
            for tier in self.lower:
                put_file = getattr(tier, "put_file", None)
                if put_file is not None and path is not None:
                    with open(path, "rb") as f:
                        put_file(key, meta, f, ttl)
                else:
                    data = inline if path is None else path.read_bytes()
                    tier.put(key, meta, data or b"", ttl)
        except LlamacacheError:
            self.disk.remove(key)
            raise

    def remove(self, key: Hashable) -> bool:
        """Remove ``key`` from every tier; True if any tier held it."""
        found = self.memory.discard(key)
        found = self.disk.remove(key) or found
        for tier in self.lower:
            found = tier.remove(key) or found
        return found

    def clear(self) -> int:
        """Remove every entry from every tier; returns how many the disk tier held."""
        self.memory.clear()
        n = self.disk.clear()
        for tier in self.lower:
            tier.clear()
        return n

    # -- upkeep -----------------------------------------------------------------------------

    def cleanup(self) -> CleanupResult:
        """Drop expired entries everywhere and bring the disk tier under its threshold."""
        memory_expired = self.memory.expire()
        self.check_memory_pressure()
        self.disk.flush_access()
        expired = self.disk.expire()
        if expired.count and self.settings.max_age is not None and self._ttl is None:
            # entries aged out on disk may still sit in the memory front (kept there
            # without an expiry to keep hits lock-free): drop the copies
            memory_expired += self.memory.clear()
        limit = int(self.settings.eviction_threshold * self.settings.disk_size)
        evicted = self.disk.evict_to(limit)
        used = self.disk.used_bytes()
        return CleanupResult(
            self.name,
            expired.count,
            expired.bytes,
            evicted.count,
            evicted.bytes,
            memory_expired,
            used,
            limit,
            used > limit,
        )

    def stats(self) -> dict[str, TierStats]:
        """Counters per tier: ``{"memory": ..., "disk": ..., <lower tier names>: ...}``."""
        m = self.memory.stats()
        out = {
            "memory": TierStats(
                "memory",
                m.hits,
                m.misses,
                m.puts,
                m.evictions,
                m.evicted_bytes,
                0,
                m.entries,
                m.bytes,
            )
        }
        d = self.disk.stats()
        out["disk"] = TierStats(
            "disk",
            d.hits,
            d.misses,
            d.puts,
            d.evictions,
            d.evicted_bytes,
            self.corrupt,
            d.entries,
            d.bytes,
        )
        for tier in self.lower:
            out[tier.name] = tier.stats()
        return out

    def flush(self) -> None:
        """Write pending access records and metrics to the index now."""
        self.disk.flush_access()
        if self.metrics is not None:
            self.metrics.flush()

    def close(self) -> None:
        """Flush metrics, close the disk tier and lower tiers; the memory front is dropped."""
        if self.metrics is not None:
            self.metrics.close()
        for tier in self.lower:
            close = getattr(tier, "close", None)
            if close is not None:
                close()
        self.disk.close()
        self.memory.clear()

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _VerifyingReader(io.RawIOBase, BinaryIO):
    """Reads a stored payload and checks its digest when the end is reached."""

    def __init__(self, raw: BinaryIO, meta: framing.EntryMeta, cache: str, key: Any) -> None:
        self._raw, self._meta, self._cache, self._key = raw, meta, cache, key
        self._hasher = checksums.hasher(meta.checksum)
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._hasher.update(memoryview(buffer)[:n])
            self._seen += n
        elif not self._checked:
            self._checked = True
            if self._seen != self._meta.stored_len or self._hasher.digest() != self._meta.digest:
                raise CorruptEntryError(self._cache, self._key, "checksum mismatch")
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()
