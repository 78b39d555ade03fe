"""TieredCache: the object callers use for one named cache — memory front, disk, lower tiers.

Reads go memory -> disk -> lower tiers (the network tier); a hit below fills the
tiers above. Writes go through to disk (and lower tiers), then memory. Arrays come
back read-only and pickled objects are only promoted into memory from a decode, so the
memory front never aliases an object the caller still holds and may mutate.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, BinaryIO

from llamacache.config.settings import MAX_DURATION, CacheSettings
from llamacache.engine import checksums, framing, index, quarantine, unshared
from llamacache.engine.disk import DiskTier, VerifiedEntry
from llamacache.engine.generation import ALL, Generation, key_hash
from llamacache.engine.memory import MemoryFront
from llamacache.engine.metrics import CacheMetrics
from llamacache.engine.protocol import (
    DELETED,
    CacheTier,
    ChunkMissing,
    SharedTier,
    TierStats,
)
from llamacache.engine.safety import ensure_private_dir, is_network_fs
from llamacache.errors import (
    CorruptEntryError,
    LlamacacheError,
    StaleEntryError,
    UnsafeCacheDirError,
    UsageError,
)

_MISS: Any = object()
_now_ns = time.monotonic_ns
_TICK_MAX_NS = 100_000_000  # fast-path hits are tallied at least this often (bounds the log)
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
        # Shared-tier coherence: a disk copy is trusted without asking the server only if
        # it was checked in this process since the listener last (re)connected and while
        # the listener keeps hearing from the server; _inv_seq closes the read/overwrite
        # race (an invalidation that arrives while a read is in flight).
        self._net: SharedTier | None = next(
            (t for t in self.lower if isinstance(t, SharedTier)), None
        )
        self._net_epoch = 0
        self._net_ok = False
        self._valid: dict[Hashable, int] = {}  # key -> epoch its disk copy was checked in
        self._inv_seq = 0
        self._resharing: threading.Thread | None = None
        self.reshared = 0
        # a reply younger than the bound (interval + 50 ms) without a PING per get
        beat = (settings.coherence_interval + 0.05) / 2
        for tier in self.lower:
            bind = getattr(tier, "bind_front", None)
            if bind is not None:
                bind(self._invalidated, self._net_reset, beat)

        # Coherence (engine/generation.py): every write here advances the cache's change
        # signal; a get looks at the clock, and at most every coherence_interval at the
        # signal, dropping memory copies other processes changed. The same tick tallies
        # fast-path hits (hit counter, lru recency) in bulk, keeping them off the hot path.
        self._gen = Generation(path)
        self._dir_id = _identity(path)
        self._gen_lock = threading.RLock()
        self._hkeys: dict[int, Hashable] = {}  # stable key hash -> key held in memory
        self._interval_ns = max(0, int(settings.coherence_interval * 1e9))
        self._tick_ns = min(self._interval_ns, _TICK_MAX_NS)
        self._due = 0  # monotonic_ns of the next tick; 0: the next get ticks
        self._check_at = 0  # monotonic_ns of the next look at the change signal
        self._hitlog: list[Hashable] = []  # fast-path hits since the last tick
        self._mdata = self.memory._data
        self._mexp = self.memory._expires
        self._fast = settings.policy != "lfu" and not self._packs
        self._move = self.memory._lru
        self.revalidations = 0  # times the change signal moved and memory was revalidated
        self.reopened = 0  # times the cache folder was replaced (restore --replace) under us

        # Counters flushed to cache.db (metrics.py); off only to measure what they cost.
        self._sampling = False  # set by the metrics ticker for a window of timed gets
        self.metrics: CacheMetrics | None = CacheMetrics(self) if metrics else None

    def _invalidated(self, key: Hashable) -> None:
        """Another process wrote ``key`` to a shared tier: drop our copies (listener thread)."""
        self._inv_seq += 1
        self.memory.discard(key)
        self._valid.pop(key, None)
        if len(self._stale) >= _STALE_MAX:
            self._stale.clear()  # bounded; the oldest marks go first
            self._net_epoch += 1  # ...and every disk copy is checked again instead
        self._stale[key] = None

    def _net_reset(self) -> None:
        """Invalidations may have been missed (listener reconnect, FLUSHALL): distrust all."""
        self._inv_seq += 1
        self._net_epoch += 1
        self._valid = {}
        self.memory.clear()

    def _trusted(self, key: Hashable) -> bool:
        return self._net_ok and self._valid.get(key) == self._net_epoch

    def _check_shared(self, net: SharedTier, key: Hashable, meta: bytes) -> str:
        """Revalidate a disk copy against the shared record: "ok", "stale" or "deleted"."""
        epoch = self._net_epoch
        found = net.probe(key, meta)
        if found == DELETED:  # withdrawn from Redis, the object store may hold it: read again
            return "deleted" if len(self.lower) == 1 else "stale"
        if isinstance(found, bytes):
            try:
                theirs, ours = framing.parse_meta(found), framing.parse_meta(meta)
            except ValueError:
                return "stale"
            if (theirs.digest, theirs.stored_len) != (ours.digest, ours.stored_len):
                return "stale"
            self._valid[key] = epoch
        elif self._net_ok:  # ABSENT (evicted, expired, never shared): the copy stands
            self._valid[key] = epoch
        return "ok"

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``, or ``default``. Memory hit ~0.2 us; disk hit decodes + promotes.

        The hot path is one clock read, one dict lookup, ``move_to_end`` (lru) and a list
        append; hit counters, recency and the coherence check run at the next tick (at
        most every ``coherence_interval``, and every 100 ms). Only while the metrics
        ticker has a sampling window open is a get timed.
        """
        if _now_ns() < self._due and self._fast:
            try:
                value = self._mdata[key]
            except KeyError:
                self.memory.misses += 1
                return self._get_below(key, default)
            if not self._mexp:
                if self._move:
                    try:  # noqa: SIM105 (contextlib.suppress costs ~100 ns here)
                        self._mdata.move_to_end(key)
                    except KeyError:
                        pass  # removed concurrently: the value read is still a valid answer
                self._hitlog.append(key)
                return value
            return self._get_memory(key, default)
        return self._tick(key, default)

    def _get_memory(self, key: Hashable, default: Any) -> Any:
        value = self.memory.get(key, _MISS)
        if value is not _MISS:
            if self._track:
                self.disk.note_hit(key)
            if self._packs and type(value) is _Packed:
                return self._unpack(key, value, default)
            return value
        return self._get_below(key, default)

    def _tick(self, key: Hashable, default: Any) -> Any:
        """The slow half of ``get``: tally hits, maybe revalidate, maybe time this get."""
        now = _now_ns()
        self._due = now + self._tick_ns
        self.tally_hits()
        if now >= self._check_at:
            self._check_at = now + self._interval_ns
            self.revalidate()
        if self._sampling:
            self._due = 0
            return self._timed_get(key, default)
        return self._get_memory(key, default)

    def tally_hits(self) -> None:
        """Count the fast-path hits since the last tick (and their recency for lru)."""
        log = self._hitlog
        if not log:
            return
        self._hitlog = []
        self.memory.hits += len(log)
        if self._track:
            for k, n in Counter(log).items():
                self.disk.note_hit(k, n)

    def revalidate(self) -> None:
        """Drop memory copies of entries other processes changed since the last look.

        Also notices the cache folder being replaced (``restore --replace``) and reopens.
        Called by ``get`` at most every ``coherence_interval``; callable any time.
        """
        with self._gen_lock:
            if _identity(self.settings.path) != self._dir_id:
                self._reopen()
                return
            net = self._net
            if net is not None:
                ok = net.listening(self.settings.coherence_interval + 0.05)
                if not ok and (self._net_ok or net.available()):
                    # no heartbeat while the server answers reads: what we hold may have
                    # changed unseen (an unreachable server: drop once, then serve local)
                    self._net_reset()
                elif ok and not self._net_ok:
                    # listening from now on: copies taken before (the listener was still
                    # subscribing) may have missed an invalidation sent meanwhile
                    self._net_reset()
                self._net_ok = ok
                if ok and not self._resharing and unshared.count(self.disk.directory):
                    self._start_resharing()
            changed = self._gen.changed()
            if not changed:
                return
            self.revalidations += 1
            if ALL in changed:
                self.memory.clear()
                self._hkeys.clear()
                return
            for h in changed:
                key = self._hkeys.pop(h, _MISS)
                if key is not _MISS:
                    self.memory.discard(key)

    def _reopen(self) -> None:
        """The folder at our path is another one now: drop everything, open the new one."""
        self.reopened += 1
        self.disk.flush_access()
        old, old_gen = self.disk, self._gen
        path = ensure_private_dir(self.settings.path)
        self.disk = DiskTier(self.settings)
        self._gen = Generation(path)
        self._dir_id = _identity(path)
        self.memory.clear()
        self._hkeys.clear()
        self._stale.clear()
        old_gen.close()
        with contextlib.suppress(Exception):
            old.close()

    def _changed(self, key: Hashable | None) -> None:
        """Advance the change signal for ``key`` (None: everything) after a write here."""
        self._gen.bump(ALL if key is None else key_hash(key))

    def _keep(self, key: Hashable, value: Any, size: int, expire_at: float | None) -> None:
        """Put into the memory front, remembering the key's stable hash for revalidation."""
        if self.memory.put(key, value, size, expire_at):
            hk = self._hkeys
            if len(hk) > 2 * len(self._mdata) + 1024:  # evicted keys pile up: rebuild
                hk.clear()
                for k in self.memory.keys():  # noqa: SIM118 (takes the lock)
                    hk[key_hash(k)] = k
            hk[key_hash(key)] = key

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
            self._keep(key, packed, size, self._expiry(ttl))
        return True

    def start_sampling(self) -> None:
        """Time the next gets (the metrics ticker's sampling window)."""
        self._sampling = True
        self._due = 0

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
            if self._sampling:
                self._due = 0
        return value

    def check_memory_pressure(self) -> int:
        """Shrink the memory front if the machine is short of memory; returns evictions.

        Called by the metrics ticker every FLUSH_SECONDS and by ``cleanup()``: one psutil
        call, never per get.
        """
        from llamacache.engine.resources import relieve_pressure

        return relieve_pressure(
            self.memory, self.settings.memory_size, self.settings.pressure_floor
        )

    def _get_below(self, key: Hashable, default: Any) -> Any:
        net, seq, epoch = self._net, self._inv_seq, self._net_epoch
        stale = self._stale.pop(key, 0) is None if self._stale else False
        try:
            found = None if stale else self.disk.get(key)
        except CorruptEntryError as exc:  # a value file that is a link, a FIFO, gone...
            return self._corrupt(exc, key, default)
        if found is not None and net is not None and not self._trusted(key):
            verdict = self._check_shared(net, key, found[0])
            if verdict == "deleted":
                return self._drop_deleted(key, default)
            if verdict == "stale":
                found, stale = None, True
        shared = False
        if found is None:
            found, shared = self._below_disk(key, stale)
            if found is _MISS:
                return self._drop_deleted(key, default)
            if found is None:
                return default
        meta, payload = found
        try:
            value = framing.decode(meta, payload, self.name, key)
        except StaleEntryError:  # an older format: a miss until the next put
            return default
        except CorruptEntryError as exc:
            if shared:  # bytes from elsewhere: drop our copy of them, never the shared record
                self.corrupt += 1
                self.disk.remove(key)
                return default
            return self._corrupt(exc, key, default)
        if self._inv_seq == seq or (key not in self._stale and self._net_epoch == epoch):
            self._promote(key, meta, payload, value)
        # else invalidated while we were reading: serve it once, keep it out of memory,
        # and leave the mark so the next get reads the shared record again
        return value

    def _promote(self, key: Hashable, meta: bytes, payload: Any, value: Any) -> None:
        if not self._remember(key, meta, payload, value) and len(payload) <= self.memory.max_value:
            self._keep(key, value, _memory_size(value, len(payload)), self._expiry())

    def _below_disk(self, key: Hashable, stale: bool) -> tuple[Any, bool]:
        """``(found, from a lower tier)``; found is _MISS when the entry was deleted
        elsewhere, or the local copy when the shared tier cannot answer."""
        # A lower (shared) tier checks what it hands over; a record it rejects is a miss.
        found = self._get_lower(key)
        if found is not None:
            self._valid[key] = self._net_epoch
            return found, True
        if stale:  # deleted elsewhere, or unreachable: then our copy is all there is
            net, local = self._net, self.disk.get(key)
            if net is not None and net.probe(key, local[0] if local else None) == DELETED:
                return _MISS, False
            return local, False
        return None, False

    def _drop_deleted(self, key: Hashable, default: Any) -> Any:
        """Removed on the shared tier by someone else: our disk copy goes too."""
        self.memory.discard(key)
        if not self.disk.read_only:
            self.disk.remove(key)
            self._changed(key)
        return default

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
                if framing.is_raw_file(found[0]):
                    self.disk.put_stream(key, found[0], len(found[1]), [found[1]])
                else:
                    self.disk.put(key, *found)
                self._changed(key)
            else:
                got = stream(key)
                if got is None:
                    continue
                meta, total, parts = got
                try:
                    # small: keep it, skip a re-read; a raw file stays a file at any size
                    # (get_path/get_model map it, as on the machine that stored it)
                    if total < self.settings.file_threshold and not framing.is_raw_file(meta):
                        found = (meta, b"".join(parts))
                        self.disk.put(key, *found)
                    else:
                        self.disk.put_stream(key, meta, total, parts)
                        if not read:
                            return meta, b""
                        found = self.disk.get(key)
                except ChunkMissing:  # counted by the tier; try the next one
                    continue
                self._changed(key)
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
        self._changed(key)
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
        except StaleEntryError:
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

    def put(
        self, key: Hashable, value: Any, ttl: float | None = None, *, share: bool = True
    ) -> None:
        """Encode, write through to disk (and lower tiers), then keep it in memory.

        ``share=False`` keeps the entry on this machine (a model manifest whose files could
        not all be shared must not be published). On failure nothing is left behind and
        the memory front no longer holds ``key``.
        """
        if self.metrics is None:
            return self._put(key, value, ttl, share)
        t0 = perf_counter()
        self._put(key, value, ttl, share)
        self.metrics.put_latency.observe(perf_counter() - t0)

    def shares_size(self, nbytes: int) -> bool:
        """True when a file of ``nbytes`` would reach a shared tier (or there is none)."""
        sizes = [t.takes_size for t in self.lower if hasattr(t, "takes_size")]
        return not sizes or any(takes(nbytes) for takes in sizes)

    def _put(self, key: Hashable, value: Any, ttl: float | None, share: bool = True) -> None:
        if ttl is not None:
            check_ttl(ttl)
        self.memory.discard(key)
        meta, payload = framing.encode(value, self.settings, key)
        expire = ttl if ttl is not None else self._ttl
        self._disk_put(key, meta, payload, expire)
        try:
            for tier in self.lower if share else ():
                if tier.put(key, meta, payload, expire) is False:  # type: ignore[arg-type]
                    self._unshared(tier, key, meta)
                elif tier is self._net:
                    self._shared(key)
        except LlamacacheError:  # write_error_policy "all": the put fails everywhere
            self.disk.remove(key)
            raise
        if self._remember(key, meta, payload, value, ttl):
            return
        t = type(value)
        if t is bytes or t is str:
            self._keep(key, value, len(value), self._expiry(ttl))
        elif (
            (np := sys.modules.get("numpy")) is not None
            and t is np.ndarray
            and value.nbytes <= self.memory.max_value
            and framing.plain_array(value) is not None
        ):
            frozen = np.array(value, order="C", copy=True)
            frozen.flags.writeable = False
            self._keep(key, frozen, frozen.nbytes, self._expiry(ttl))

    def _disk_put(self, key: Hashable, meta: bytes, payload: Any, expire: float | None) -> None:
        """Write to disk, then advance the change signal; a put that landed in a folder
        swapped out meanwhile (``restore --replace``) is written again into the new one."""
        self.disk.put(key, meta, payload, expire)
        if _identity(self.settings.path) != self._dir_id:
            with self._gen_lock:
                if _identity(self.settings.path) != self._dir_id:
                    self._reopen()
            self.disk.put(key, meta, payload, expire)
        self._changed(key)

    def put_file(
        self, key: Hashable, source: str | Path | BinaryIO, ttl: float | None = None
    ) -> framing.EntryMeta:
        """Store a file byte-for-byte, streamed; returns its header (digest, size)."""
        if ttl is not None:
            check_ttl(ttl)
        self.memory.discard(key)
        entry = self.disk.put_file(key, source, ttl)
        if _identity(self.settings.path) != self._dir_id:  # replaced under us: not acknowledged
            with self._gen_lock:
                self._reopen()
            raise LlamacacheError(
                f"cache {self.name!r}: {self.settings.path} was replaced while {key!r} was "
                "being stored; store it again"
            )
        self._changed(key)
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
                        ok = put_file(key, meta, f, ttl)
                else:
                    data = inline if path is None else path.read_bytes()
                    ok = tier.put(key, meta, data or b"", ttl)
                if ok is False:
                    self._unshared(tier, key, meta)
                elif tier is self._net:
                    self._shared(key)
        except LlamacacheError:
            self.disk.remove(key)
            raise

    def _shared(self, key: Hashable) -> None:
        self._valid[key] = self._net_epoch
        if self._resharing is not None or unshared.count(self.disk.directory):
            unshared.forget(self.disk.directory, key)

    def _unshared(self, tier: CacheTier, key: Hashable, meta: bytes) -> None:
        """A write that did not reach the shared tier: remember it for the re-sharer, or,
        kept local on purpose (too large, unsigned pickle), withdraw the shared value: it
        is not this key's any more."""
        if tier is not self._net or self._net is None:
            return
        if not self._net.shareable(meta):
            self._net.withdraw(key, meta)
            return
        with contextlib.suppress(OSError):
            unshared.remember(self.disk.directory, key)

    def _start_resharing(self) -> None:
        self._resharing = threading.Thread(
            target=self._reshare, name=f"llamacache-reshare-{self.name}", daemon=True
        )
        self._resharing.start()

    def _reshare(self) -> None:
        """Background: share the writes that failed, where the shared tier still lacks them."""
        net = self._net
        try:
            for key in list(unshared.pending(self.disk.directory)):
                if net is None or not net.available():
                    return
                if self._share_again(net, key):
                    unshared.forget(self.disk.directory, key)
        except Exception:  # best effort: the next tick starts another pass
            return
        finally:
            self._resharing = None

    def _share_again(self, net: Any, key: Hashable) -> bool:
        found = self.disk.locate(key)
        if found is None:  # gone locally since: nothing to share
            return True
        ok = bool(net.put_stored(key, *found, only_if_absent=True))
        if ok:
            self.reshared += 1
        return ok

    def unshared_count(self) -> int:
        """Writes of this cache (any process) not yet on the shared tier."""
        return unshared.count(self.disk.directory)

    def remove(self, key: Hashable) -> bool:
        """Remove ``key`` from every tier; True if any tier held it."""
        found = self.memory.discard(key)
        found = self.disk.remove(key) or found
        self._changed(key)
        unshared.forget(self.disk.directory, key)
        for tier in self.lower:
            found = tier.remove(key) or found
        return found

    def clear(self) -> int:
        """Remove every entry from every tier; returns how many the disk tier held."""
        self.memory.clear()
        n = self.disk.clear()
        self._changed(None)
        for tier in self.lower:
            tier.clear()
        return n

    # -- upkeep -----------------------------------------------------------------------------

    def cleanup(self) -> CleanupResult:
        """Drop expired entries everywhere and bring the disk tier under its threshold."""
        self.tally_hits()
        memory_expired = self.memory.expire()
        self.check_memory_pressure()
        self.disk.flush_access()
        expired = self.disk.expire()
        if expired.count and self.settings.max_age is not None and self._ttl is None:
            # entries aged out on disk may still sit in the memory front (kept there
            # without an expiry to keep hits lock-free): drop the copies
            memory_expired += self.memory.clear()
        limit = index.disk_limit(self.settings)
        evicted = self.disk.evict_to(limit)
        if expired.count or evicted.count:
            self._changed(None)
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
        self.tally_hits()
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
        self.tally_hits()
        self.disk.flush_access()
        if self.metrics is not None:
            self.metrics.flush()

    def close(self) -> None:
        """Flush metrics, close the disk tier and lower tiers; the memory front is dropped."""
        self.tally_hits()
        if self.metrics is not None:
            self.metrics.close()
        for tier in self.lower:
            close = getattr(tier, "close", None)
            if close is not None:
                close()
        self.disk.close()
        self._gen.close()
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


def _identity(path: Path) -> tuple[int, int]:
    """The folder's (device, inode): another folder renamed into its place differs."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return st.st_dev, st.st_ino


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
