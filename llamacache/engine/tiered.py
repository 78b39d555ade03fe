"""TieredCache: the object callers use for one named cache — memory front, disk, lower tiers.

Reads go memory -> disk -> lower tiers (a network tier, later); a hit below fills the
tiers above. Writes go through to disk (and lower tiers), then memory. Arrays come
back read-only and pickled objects are only promoted into memory from a decode, so the
memory front never aliases an object the caller still holds and may mutate.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from llamacache.engine import checksums, framing, quarantine
from llamacache.engine.disk import DiskTier
from llamacache.engine.memory import MemoryFront
from llamacache.engine.protocol import CacheTier, TierStats
from llamacache.engine.safety import ensure_private_dir, is_network_fs
from llamacache.errors import CorruptEntryError, UnsafeCacheDirError, UsageError
from llamacache.settings import CacheSettings

_MISS: Any = object()


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

    def __init__(self, settings: CacheSettings, lower: Sequence[CacheTier] = ()) -> None:
        path = ensure_private_dir(settings.path)
        if not settings.allow_network_fs and is_network_fs(path):
            raise UnsafeCacheDirError(
                f"cache {settings.name!r}: {path} is on a network filesystem where SQLite "
                "locking is unsafe; set allow_network_fs = true to use it anyway"
            )
        self.settings = settings
        self.name = settings.name
        self.memory = MemoryFront(settings.memory_size, settings.max_items, settings.memory_policy)
        self.disk = DiskTier(settings)
        self.lower: list[CacheTier] = list(lower)  # e.g. a network tier, consulted after disk
        self._track = self.disk.policy.track_access
        self._ttl = settings.max_age if settings.policy == "time" else None
        self.corrupt = 0

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``, or ``default``. Memory hit ~1 us; disk hit decodes + promotes."""
        value = self.memory.get(key, _MISS)
        if value is not _MISS:
            if self._track:
                self.disk.record_access(key)
            return value
        found = self.disk.get(key)
        if found is None:
            found = self._get_lower(key)
            if found is None:
                return default
        meta, payload = found
        try:
            value = framing.decode(meta, payload, self.name, key)
        except CorruptEntryError as exc:
            return self._corrupt(exc, key, default)
        if len(payload) <= self.memory.max_value:
            self.memory.put(key, value, _memory_size(value, len(payload)), self._expiry())
        return value

    def _get_lower(self, key: Hashable) -> tuple[bytes, bytes] | None:
        for i, tier in enumerate(self.lower):
            found = tier.get(key)
            if found is not None:
                meta, payload = found
                self.disk.put(key, meta, payload)  # backfill: disk, and lower tiers above it
                for upper in self.lower[:i]:
                    upper.put(key, meta, payload)
                return found
        return None

    def _corrupt(self, exc: CorruptEntryError, key: Hashable, default: Any) -> Any:
        """Count it; with ``on_corrupt == "miss"`` quarantine the entry and miss, else raise."""
        self.corrupt += 1
        if self.settings.on_corrupt != "miss":
            raise exc
        found = self.disk.locate(key)
        if found is not None:
            _, path, inline = found
            # a copy that cannot be kept (read-only, disk full) must still never be served
            with contextlib.suppress(OSError):
                quarantine.store(self.disk.directory, key, exc.reason, file=path, inline=inline)
        self.remove(key)
        return default

    def _expiry(self, ttl: float | None = None) -> float | None:
        ttl = ttl if ttl is not None else self._ttl
        return None if ttl is None else time.time() + ttl

    def get_path(self, key: Hashable) -> Path | None:
        """Path of a file-backed entry whose file is exactly the value's bytes (for mmap).

        Not verified here (that would read the whole file); ``open`` verifies as it reads.
        """
        found = self.disk.locate(key)
        if found is None or found[1] is None:
            return None
        try:
            meta = framing.parse_meta(found[0])
        except ValueError:
            return None
        return found[1] if meta.is_raw else None

    def open(self, key: Hashable) -> BinaryIO | None:
        """A binary reader over a bytes/str/raw-file entry that checks the digest at EOF.

        Reading to the end raises CorruptEntryError on a mismatch. Other kinds: UsageError.
        """
        found = self.disk.locate(key)
        if found is None:
            value = self.memory.get(key, _MISS)
            if isinstance(value, (bytes, str)):
                return io.BytesIO(value.encode("utf-8") if isinstance(value, str) else value)
            return None
        tag, path, inline = found
        try:
            meta = framing.parse_meta(tag)
        except ValueError:
            return self._corrupt(  # type: ignore[no-any-return]
                CorruptEntryError(self.name, key, "bad entry header"), key, None
            )
        if not meta.is_raw:
            value = self.get(key, _MISS)
            if isinstance(value, (bytes, str)):
                return io.BytesIO(value.encode("utf-8") if isinstance(value, str) else value)
            if value is _MISS:
                return None
            raise UsageError(
                f"cache {self.name!r}: entry {key!r} is a {meta.kind} value; "
                "use get() instead of open()"
            )
        if path is None:
            return _VerifyingReader(io.BytesIO(inline or b""), meta, self.name, key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
        except FileNotFoundError:
            return None
        return _VerifyingReader(handle, meta, self.name, key)

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
        self.memory.discard(key)
        meta, payload = framing.encode(value, self.settings)
        expire = ttl if ttl is not None else self._ttl
        self.disk.put(key, meta, payload, expire)
        for tier in self.lower:
            tier.put(key, meta, bytes(payload), expire)
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
        self.memory.discard(key)
        return self.disk.put_file(key, source, ttl)

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
        self.disk.flush_access()
        expired = self.disk.expire()
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
        """Write pending access records to the index now."""
        self.disk.flush_access()

    def close(self) -> None:
        """Flush and close the disk tier; the memory front is dropped."""
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
