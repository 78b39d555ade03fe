"""The persistent tier: one diskcache ``Cache`` per named cache, with our own eviction.

diskcache runs with ``eviction_policy="none"`` and ``cull_limit=0``: it never culls and
never writes on a get. Eviction, recency and crash-safe file writes are ours:

* recency (lru/lfu) is collected in memory and written in one transaction every
  5 s (or when 100,000 distinct keys are pending), so a get never waits for a write
  (diskcache's own lru makes every get a write transaction, 6-9x slower). It goes to a
  narrow side table, ``LlcAccess`` (rowid, access_time, access_count), kept in step
  with ``Cache`` by triggers: updating ``Cache.access_time`` in place rewrites the whole
  row (value included), ~5 us per row at 100 B and ~27 us at 10 KB, while a side-table
  row costs the same at any size;
* a file-backed value is written to ``tmp/``, fsynced, renamed into place and only then
  indexed, so a crash leaves an orphan file, never a row pointing at half a file;
* eviction deletes index rows first and files after the commit, for the same reason.

Relies on diskcache 5.x internals (``_sql``, ``_con``, ``_transact``, ``_page_size``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, Union

import diskcache

from llamacache.config.settings import CacheSettings
from llamacache.engine import checksums, eviction, framing, ghosts, index, recency, reserve
from llamacache.engine.eviction import EVICT_BATCH, POLICIES
from llamacache.engine.failures import DB_ERRORS
from llamacache.engine.files import (
    BadValueFile,
    LlamaDisk,
    PreparedFile,
    blocks,
    open_value,
    safe_write,
    verify_open_file,
)
from llamacache.engine.protocol import EvictionResult, TierStats
from llamacache.engine.safety import is_value_name
from llamacache.errors import (
    CacheIOError,
    DiskFullError,
    LlamacacheError,
    StaleEntryError,
    translate_os_error,
)

log = logging.getLogger("llamacache.disk")
T = TypeVar("T")

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)
FLUSH_EVERY = 100_000  # distinct keys pending that force a flush (each costs one row write)
FLUSH_SECONDS = 5.0  # ... or age of the oldest unflushed access (recency is advisory)
HIT_CHECK_EVERY = 256  # memory-front hits noted between two looks at the clock
MEASURE_SECONDS = 1.0  # a put measures the tier at least this often (other writers)
_ROW_OVERHEAD = 64  # index bytes a row costs beyond its payload and header (estimate)
_SELECT = (
    "SELECT tag, filename, value FROM Cache WHERE key = ? AND raw = ?"
    " AND (expire_time IS NULL OR expire_time > ?)"
)
_SELECT_TIMES = (
    "SELECT tag, filename, value, store_time, expire_time FROM Cache WHERE key = ? AND raw = ?"
    " AND (expire_time IS NULL OR expire_time > ?)"
)


def _read_only(directory: Path) -> bool:
    """True when the cache exists but this process may not write its folder or index."""
    db = directory / diskcache.core.DBNAME
    if not db.exists():
        return False
    return not (os.access(directory, os.W_OK) and os.access(db, os.W_OK))


class ReadOnlyIndex(diskcache.Cache):  # type: ignore[misc]
    """diskcache's Cache over an index this process may read but not write.

    diskcache's own constructor writes its Settings and creates tables; this one only
    reads them. SQLite opens the file ``mode=ro`` while a writer's ``-wal`` exists (its
    ``-shm`` then carries the locks), else ``immutable=1`` (no lock files to create in a
    folder we cannot write). Any write raises sqlite3.OperationalError (read-only).
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._timeout = 60
        self._local = threading.local()
        self._txn_id = None
        db = os.path.join(directory, diskcache.core.DBNAME)
        mode = "mode=ro" if os.path.exists(db + "-wal") else "immutable=1"
        self._uri = f"file:{urllib.parse.quote(db)}?{mode}"
        settings = dict(self._sql("SELECT key, value FROM Settings").fetchall())
        for key, value in settings.items():
            setattr(self, key, value)
        disk_kwargs = {k[5:]: v for k, v in settings.items() if k.startswith("disk_")}
        self._disk = LlamaDisk(directory, **disk_kwargs)
        ((self._page_size,),) = self._sql("PRAGMA page_size").fetchall()

    @property
    def _con(self) -> sqlite3.Connection:
        if getattr(self._local, "pid", None) != os.getpid():
            self.close()
            self._local.pid = os.getpid()
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = sqlite3.connect(
                self._uri, uri=True, timeout=self._timeout, isolation_level=None
            )
        return con


@dataclass(frozen=True)
class VerifiedEntry:
    """An entry whose header is bound to its key and whose payload matched its digest.

    ``handle`` is positioned at 0 and is the caller's to close: for a file-backed entry it
    is the very descriptor that was checked (a rename meanwhile cannot swap it).
    """

    meta: framing.EntryMeta
    handle: BinaryIO | None  # None only when ``files_only`` skipped an entry that is no file
    path: Path | None  # the value file, or None when the payload is inline


@dataclass(frozen=True)
class ExportedEntry:
    """An entry leaving the cache whole (backup): its stored header and verified payload.

    ``meta`` is the header exactly as stored (what a restore stores again); ``parsed`` is
    what it says. ``handle`` is open at 0 over the verified payload (``parsed.stored_len``
    bytes) and is the caller's to close.
    """

    key: Hashable
    meta: bytes
    parsed: framing.EntryMeta
    handle: BinaryIO
    store_time: float | None
    expire_time: float | None


@dataclass(frozen=True)
class StoredEntry:
    """One index row: header, where the payload is, and its times (no value file read)."""

    meta: bytes
    path: Path | None  # a value file, or None when the payload is inline
    inline: bytes | None
    store_time: float | None
    expire_time: float | None


class DiskTier:
    """One named cache's disk tier. Safe across threads and processes (diskcache/SQLite).

    Raises DiskFullError / ReadOnlyCacheError / CacheIOError naming the cache on
    OS or SQLite failures; a failed put leaves neither an entry nor a temp file.
    """

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.directory = Path(settings.path).absolute()
        self.policy = POLICIES[settings.policy]
        self._track = self.policy.track_access
        self._trigger = index.disk_limit(settings)
        self._ttl = settings.max_age if settings.policy == "time" else None
        self._atime: dict[Hashable, float] = {}
        self._acount: dict[Hashable, int] = {}
        self._last_flush = time.time()
        self._hit_countdown = HIT_CHECK_EVERY
        self._slack = 0  # index pages that eviction could not free (see evict_to)
        # Bytes this process may still add before it must measure the tier again, and when
        # it must anyway (other processes write too): spares a query on most puts.
        self._headroom = 0
        self._measure_at = 0.0
        self.hits = self.misses = self.puts = self.evictions = self.evicted_bytes = 0
        self.expirations = self.ghost_hits = 0
        self._ghosts = False  # any ghost rows seen; a miss checks them only then
        self._short = False  # the reserve was given back and there is no room to re-take it
        # A cache this user may read but not write (a system-wide cache): open the index
        # read-only; gets work, access times are simply not recorded, puts fail cleanly.
        self.read_only = _read_only(self.directory)
        self._cache = self._freeing(self._open)
        self._disk: LlamaDisk = self._cache.disk
        self._disk.durability = settings.durability
        self._page_size: int = self._cache._page_size
        self.refresh_ghosts()

    def _open(self) -> diskcache.Cache:
        if self.read_only:
            try:
                return ReadOnlyIndex(str(self.directory))
            except (OSError, sqlite3.Error) as exc:
                raise self._error(exc) from exc
        try:
            cache = diskcache.Cache(
                str(self.directory),
                timeout=60,
                disk=LlamaDisk,
                eviction_policy="none",
                cull_limit=0,
                size_limit=2**62,
                statistics=0,
                disk_min_file_size=self.settings.file_threshold,
            )
            # LlcAccess and LlcGhost exist for every policy: another process may use lru
            recency.install(cache._sql, cache._transact, ghosts.DDL)
            for ddl in self.policy.indexes:
                cache._sql_retry(ddl)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            # diskcache trusts its Settings rows; a damaged index yields NULLs it cannot use
            from llamacache.errors import CorruptEntryError

            raise CorruptEntryError(
                self.name, "<index>", f"SQLite index settings are damaged: {exc}"
            ) from None
        return cache

    def _freeing(self, action: Callable[[], T]) -> T:
        """Run an open or a delete; on a full disk give back the reserve and retry once.

        Opening and deleting must work on a full disk, or nothing could free room
        (see engine/reserve.py). Puts never use the reserve.
        """
        try:
            out = action()
        except DiskFullError:
            if not reserve.release(self.directory):
                raise
            log.info("cache %r: disk full; released the reserve to free room", self.name)
            out = action()
        if not self.read_only:
            self._short = not reserve.ensure(self.directory)
        return out

    def _check_room(self) -> None:
        """Refuse a put while the reserve cannot be re-taken: it is what lets deletes work."""
        if self._short:
            self._short = not reserve.ensure(self.directory)
            if self._short:
                raise DiskFullError(
                    f"cache {self.name!r}: disk full at {self.directory} (the last "
                    f"{reserve.RESERVE_BYTES >> 20} MiB are kept so entries can still be removed)"
                )

    def refresh_ghosts(self) -> None:
        """Look whether any process has left ghosts (at open; later via ``note_ghosts``)."""
        try:
            self._ghosts = ghosts.any_ghosts(self._cache._sql)
        except DB_ERRORS:
            self._ghosts = False

    def note_ghosts(self, present: bool) -> None:
        """Told by the metrics flush (another thread) whether the index holds ghosts."""
        self._ghosts = self._ghosts or present

    def _error(self, exc: BaseException) -> LlamacacheError:
        if isinstance(exc, diskcache.Timeout):
            return CacheIOError(
                f"cache {self.name!r}: timed out waiting for the index lock at {self.directory}"
            )
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            denied = index.permission_problem(self.directory / index.DB_NAME, self.name)
            if denied is not None:
                return denied
        return translate_os_error(exc, self.name, self.directory) or CacheIOError(
            f"cache {self.name!r}: {exc}"
        )

    # -- reads ------------------------------------------------------------------------------

    def _row(self, key: Hashable) -> tuple[Any, Any, Any] | None:
        db_key, raw = self._disk.put(key)
        try:
            rows = self._cache._sql(_SELECT, (db_key, raw, time.time())).fetchall()
        except DB_ERRORS as exc:
            raise self._error(exc) from exc
        return self._checked(key, rows[0]) if rows else None

    def _checked(self, key: Hashable, row: tuple[Any, ...]) -> Any:
        """``row`` when its header, file name and payload have the types we write.

        A flipped type byte in the index turns a column into a number or text; a planted
        row names a file outside the cache. Either is a corrupt entry, never a path to
        open or a length to allocate.
        """
        tag, filename, value = row[:3]
        if (
            not isinstance(tag, bytes)
            or (filename is not None and not is_value_name(filename))
            or (value is not None and not isinstance(value, bytes))
        ):
            raise self._corrupt(key, "damaged index row")
        return row

    def get(self, key: Hashable) -> tuple[bytes, bytes] | None:
        """``(meta, payload)`` or None; a file-backed payload is read whole. Records access."""
        row = self._row(key)
        if row is None:
            self.misses += 1
            if self._ghosts:
                self._check_ghost(key)
            return None
        tag, filename, value = row
        if filename is not None:
            try:
                f, _ = open_value(os.path.join(self.directory, filename))
                with f:
                    value = f.read()
            except FileNotFoundError:
                self._vanished(key, filename)
                return None
            except BadValueFile as exc:
                raise self._corrupt(key, str(exc)) from None
            except OSError as exc:
                raise self._error(exc) from exc
        self.hits += 1
        if self._track:
            self.record_access(key)
        return tag, value

    def _check_ghost(self, key: Hashable) -> None:
        try:
            if ghosts.contains(self._cache._sql, ghosts.key_hash(*self._disk.put(key))):
                self.ghost_hits += 1
        except DB_ERRORS:
            pass  # advisory, like recency

    def _vanished(self, key: Hashable, filename: str) -> None:
        """A row's file is gone: a concurrent remove or overwrite (a miss), or damage (corrupt).

        Only when the index still names that same file is it damage: a writer that
        replaced the entry meanwhile indexes a new file name.
        """
        row = self._row(key)
        if row is None or row[1] != filename:
            self.misses += 1
            return None
        from llamacache.errors import CorruptEntryError

        raise CorruptEntryError(self.name, key, "value file is missing")

    def _corrupt(self, key: Hashable, reason: str) -> LlamacacheError:
        from llamacache.errors import CorruptEntryError

        return CorruptEntryError(self.name, key, reason)

    def open_verified(self, key: Hashable, files_only: bool = False) -> VerifiedEntry | None:
        """``key``'s payload as an open, verified binary file, or None on a miss.

        With ``files_only``, an entry that is not a raw value file (inline, compressed,
        pickled...) comes back unopened and unverified (``handle`` None, no access recorded).

        The header must be bound to ``key``; a value file must be a regular file (never
        followed through a symlink) of the recorded size whose digest matches. The hash
        pass is paid once per file identity per process (``files.verify_open_file``), so
        repeated opens of an unchanged file cost one lookup and an fstat. Raises
        CorruptEntryError (StaleEntryError for an older format). Records one access.
        """
        row = self._row(key)
        if row is None:
            self.misses += 1
            return None
        found = self._verified(key, *row, files_only=files_only)
        if found is not None and found.handle is not None:
            self.hits += 1
            if self._track:
                self.record_access(key)
        return found

    def export(self, key: Hashable) -> ExportedEntry | None:
        """``key``'s entry as a backup copies it: stored header, verified payload, times.

        The same checks as ``open_verified`` (header bound to ``key``, a regular value file
        of the recorded size, digest matched: CorruptEntryError otherwise), except that an
        entry in an older header format (no key hash) is exported as it is stored, since
        it reads as a miss wherever it is restored. None when the entry is gone (removed
        or expired meanwhile). Records no access and counts no hit: copying a cache is not
        using it. Costs one hash pass over the payload (once per file identity).
        """
        row = self._described(key)
        if row is None:
            return None
        tag, filename, value, store_time, expire_time = row
        found = self._verified(key, tag, filename, value, stale_ok=True)
        if found is None or found.handle is None:
            return None
        return ExportedEntry(key, bytes(tag), found.meta, found.handle, store_time, expire_time)

    def _verified(
        self,
        key: Hashable,
        tag: Any,
        filename: Any,
        value: Any,
        *,
        files_only: bool = False,
        stale_ok: bool = False,
    ) -> VerifiedEntry | None:
        """One index row's payload opened and verified (see ``open_verified``)."""
        try:
            meta = framing.parse_meta(tag)
        except ValueError:
            raise self._corrupt(key, "bad entry header") from None
        if meta.key_hash is None:
            if not stale_ok:
                raise StaleEntryError(self.name, key, "written by an older llamacache")
        elif not framing.check_key(meta, key):
            raise self._corrupt(key, "entry belongs to another key")
        if files_only and (filename is None or not meta.is_raw):
            return VerifiedEntry(meta, None, None)
        path: Path | None = None
        handle: BinaryIO
        if filename is None:
            payload = bytes(value or b"")
            if not framing.verify_payload(meta, payload):
                raise self._corrupt(key, "checksum mismatch")
            handle = io.BytesIO(payload)
        else:
            path = self.directory / filename
            opened = self._open_file(key, filename, meta)
            if opened is None:
                return None
            handle = opened
        return VerifiedEntry(meta, handle, path)

    def _open_file(self, key: Hashable, filename: str, meta: framing.EntryMeta) -> Any:
        """The verified open value file, or None when it vanished (a concurrent remove)."""
        try:
            handle, st = open_value(self.directory / filename, meta.stored_len)
        except FileNotFoundError:
            self._vanished(key, filename)
            return None
        except BadValueFile as exc:
            raise self._corrupt(key, str(exc)) from None
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            ok = verify_open_file(handle, st, meta.checksum, meta.digest)
        except OSError as exc:
            handle.close()
            raise self._error(exc) from exc
        if not ok:
            handle.close()
            raise self._corrupt(key, "checksum mismatch")
        return handle

    def locate(self, key: Hashable) -> tuple[bytes, Path | None, bytes | None] | None:
        """``(meta, file path, None)`` for a file-backed entry, ``(meta, None, payload)`` inline."""
        row = self._row(key)
        if row is None:
            return None
        if self._track:
            self.record_access(key)
        tag, filename, value = row
        if filename is None:
            return tag, None, value
        return tag, self.directory / filename, None

    def describe(self, key: Hashable) -> StoredEntry | None:
        """Header, storage and times of one entry, without reading a file-backed value.

        The row is read in one statement, so it is never half-written; a file it names
        may vanish afterwards (a concurrent remove), which the caller sees as
        FileNotFoundError when it opens the path. Does not record an access.
        """
        row = self._described(key)
        if row is None:
            return None
        tag, filename, value, store_time, expire_time = row
        path = None if filename is None else self.directory / filename
        return StoredEntry(bytes(tag or b""), path, value, store_time, expire_time)

    def _described(self, key: Hashable) -> tuple[Any, Any, Any, Any, Any] | None:
        """``key``'s unexpired row with its times (one statement), or None."""
        db_key, raw = self._disk.put(key)
        try:
            rows = self._cache._sql(_SELECT_TIMES, (db_key, raw, time.time())).fetchall()
        except DB_ERRORS as exc:
            raise self._error(exc) from exc
        return self._checked(key, rows[0]) if rows else None

    def open(self, key: Hashable) -> BinaryIO | None:
        """The stored payload as a binary file (unverified; see TieredCache.open), or None."""
        found = self.locate(key)
        if found is None:
            return None
        _, path, value = found
        if path is None:
            return io.BytesIO(value or b"")
        try:
            return open(path, "rb")
        except FileNotFoundError:
            self._vanished(key, str(path.relative_to(self.directory)))
            return None

    def path_of(self, key: Hashable) -> Path | None:
        """Absolute path of a file-backed value, or None (missing or stored inline)."""
        found = self.locate(key)
        return None if found is None else found[1]

    def contains(self, key: Hashable) -> bool:
        """True if ``key`` has an unexpired entry (one indexed lookup)."""
        try:
            return key in self._cache
        except DB_ERRORS as exc:
            raise self._error(exc) from exc

    def iter_keys(self) -> Iterator[Hashable]:
        """Every key in storage order (expired ones included until removed)."""
        try:
            yield from self._cache
        except DB_ERRORS as exc:
            raise self._error(exc) from exc

    def count(self) -> int:
        """Number of rows in the index (O(1): diskcache keeps the count)."""
        try:
            return len(self._cache)
        except DB_ERRORS as exc:
            raise self._error(exc) from exc

    def used_bytes(self) -> int:
        """Live SQLite pages plus value-file bytes: what the cache occupies on disk now."""
        try:
            return index.index_bytes(self._cache._con)
        except DB_ERRORS as exc:
            raise self._error(exc) from exc

    # -- writes -----------------------------------------------------------------------------

    def _index(self, key: Hashable, value: Any, meta: bytes, expire: float | None) -> None:
        if self._short:
            self._check_room()
        filename = value.filename if type(value) is PreparedFile else None
        try:
            self._cache.set(key, value, expire=expire, tag=meta)
        except BaseException as exc:
            if filename is not None:  # the row never committed: the file is ours to remove
                self._disk.remove(filename)
            if isinstance(exc, (OSError, sqlite3.Error, diskcache.Timeout)):
                raise self._error(exc) from exc
            raise
        self.puts += 1
        size = value.size if filename is not None else len(value)
        self._after_write(size + len(meta) + _ROW_OVERHEAD)

    def _prepare(self, chunks: Iterable[BytesLike]) -> PreparedFile:
        if self._short:
            self._check_room()
        filename, full_path = self._disk.filename()
        try:
            size = safe_write(str(self.directory), full_path, chunks, self.settings.durability)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        return PreparedFile(filename, size)

    def put(
        self, key: Hashable, meta: bytes, payload: BytesLike, expire: float | None = None
    ) -> None:
        """Store a framed entry: inline below ``file_threshold``, else a crash-safe file.

        ``expire`` is seconds from now; policy ``time`` applies ``max_age`` when it is None.
        Costs one write transaction (+ file write and fsync for large payloads).
        """
        if expire is None:
            expire = self._ttl
        if len(payload) < self.settings.file_threshold:
            self._index(key, payload if type(payload) is bytes else bytes(payload), meta, expire)
        else:
            self._index(key, self._prepare((payload,)), meta, expire)

    def put_stream(
        self,
        key: Hashable,
        meta: bytes,
        total: int,
        parts: Iterable[BytesLike],
        expire: float | None = None,
    ) -> None:
        """Store a framed entry whose payload arrives in parts (a network tier's chunks).

        Never holds a large payload whole: it is written to a crash-safe file as it comes.
        An exception from ``parts`` leaves nothing behind. A raw file (``put_file`` on the
        machine that stored it) stays file-backed at any size, so it can be mapped here too.
        """
        if total < self.settings.file_threshold and not framing.is_raw_file(meta):
            self.put(key, meta, b"".join(parts), expire)
        else:
            expire = expire if expire is not None else self._ttl
            self._index(key, self._prepare(parts), meta, expire)

    def put_file(
        self, key: Hashable, source: str | Path | BinaryIO, ttl: float | None = None
    ) -> framing.EntryMeta:
        """Store a file byte-for-byte (kind rawfile), streamed in 4 MiB blocks and hashed as copied.

        Never reads the source whole. The entry is always file-backed, so ``path_of``
        can hand it out for memory-mapping. Costs one copy (+ fsync) of the file.
        """
        return self.put_file_as(lambda digest: key, source, ttl)[1]

    def put_file_as(
        self,
        name: Callable[[bytes], Hashable],
        source: str | Path | BinaryIO,
        ttl: float | None = None,
    ) -> tuple[Hashable, framing.EntryMeta]:
        """``put_file`` under the key ``name(digest)``: content addressing in one pass (the
        file is copied and hashed, then named and indexed). Returns the key and the header."""
        algo = checksums.BY_NAME[self.settings.checksum]
        hasher = algo.new()
        try:
            with contextlib.ExitStack() as stack:
                src: Any = source
                if isinstance(source, (str, Path)):
                    src = stack.enter_context(open(source, "rb"))
                prepared = self._prepare(blocks(src, hasher))
        except OSError as exc:
            raise self._error(exc) from exc
        digest = hasher.digest()
        try:
            key = name(digest)
        except BaseException:
            self._disk.remove(prepared.filename)  # never indexed: ours to remove
            raise
        meta = framing.make_meta(
            framing.K_RAWFILE, 0, algo.id, digest, prepared.size, prepared.size, key
        )
        self._index(key, prepared, meta, ttl if ttl is not None else self._ttl)
        return key, framing.parse_meta(meta)

    def put_framed(
        self, key: Hashable, meta: bytes, source: BinaryIO, expire: float | None = None
    ) -> None:
        """Store an already-framed payload streamed from ``source`` as a value file (restore).

        The payload is hashed as it is copied; when it does not match ``meta`` the file is
        removed and CorruptEntryError is raised, so a bad stream never gets indexed.
        """
        from llamacache.errors import CorruptEntryError

        try:
            parsed = framing.parse_meta(meta)
        except ValueError as exc:
            raise CorruptEntryError(self.name, key, str(exc)) from None
        hasher = checksums.hasher(parsed.checksum)
        prepared = self._prepare(blocks(source, hasher))
        if prepared.size != parsed.stored_len or hasher.digest() != parsed.digest:
            self._disk.remove(prepared.filename)
            raise CorruptEntryError(self.name, key, "checksum mismatch")
        self._index(key, prepared, meta, expire)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """Group several puts into one SQLite write transaction (bulk loads such as restore).

        Holds the index's writer lock until the block ends: keep blocks short (hundreds of
        puts), other processes' writes wait meanwhile.
        """
        return self._cache.transact()  # type: ignore[no-any-return]

    def remove(self, key: Hashable) -> bool:
        """Remove ``key``'s row, then its file; True if it was present."""
        self._acount.pop(key, None)

        def delete() -> bool:
            try:
                return bool(self._cache.delete(key))
            except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                raise self._error(exc) from exc

        return self._freeing(delete)

    def clear(self) -> int:
        """Remove every entry; returns how many. Deletes in batches of 100 rows."""
        self._atime, self._acount = {}, {}

        def clear() -> int:
            try:
                return int(self._cache.clear())
            except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                raise self._error(exc) from exc

        return self._freeing(clear)

    # -- recency ----------------------------------------------------------------------------

    def record_access(self, key: Hashable) -> None:
        """Note one read of ``key`` for lru/lfu; flushed in batches (no-op for other policies).

        Unlocked on purpose: a race between threads can lose one count, never corrupt state.
        """
        if not self._track:
            return
        now = time.time()
        self._atime[key] = now
        counts = self._acount
        counts[key] = counts.get(key, 0) + 1
        if len(counts) >= FLUSH_EVERY or now - self._last_flush >= FLUSH_SECONDS:
            self.flush_access()

    def note_hit(self, key: Hashable, n: int = 1) -> None:
        """Note a memory-front hit of ``key`` for lru/lfu: a count only, no clock read.

        The hot path of a tiered get (~60 ns instead of ~250 ns for ``record_access``).
        The entry's access time becomes the time of the next flush (at most ~1 s later),
        which is when the disk tier next needs it.
        """
        counts = self._acount
        counts[key] = counts.get(key, 0) + n
        left = self._hit_countdown = self._hit_countdown - 1
        if not left:
            self._hit_countdown = HIT_CHECK_EVERY
            if len(counts) >= FLUSH_EVERY or time.time() - self._last_flush >= FLUSH_SECONDS:
                self.flush_access()

    def flush_access(self) -> int:
        """Write pending access times/counts in one transaction; returns rows updated.

        Failures (a locked or read-only index) drop the batch: recency is advisory.
        """
        now = time.time()
        self._last_flush = now
        atime, counts = self._atime, self._acount
        if not counts:
            return 0
        self._atime, self._acount = {}, {}
        put = self._disk.put
        rows = [(atime.get(k, now), n, *put(k)) for k, n in list(counts.items())]
        try:
            with self._cache._transact(retry=False):
                self._cache._con.executemany(recency.FLUSH, rows)
        except (*DB_ERRORS, OSError, diskcache.Timeout) as exc:
            log.debug("cache %r: dropped %d access records: %s", self.name, len(rows), exc)
            return 0
        return len(rows)

    # -- eviction ---------------------------------------------------------------------------

    def _after_write(self, added: int) -> None:
        if self._track and (self._acount and time.time() - self._last_flush >= FLUSH_SECONDS):
            self.flush_access()
        if self.policy.order is None:
            return
        self._headroom -= added
        now = time.monotonic()
        if self._headroom > 0 and now < self._measure_at:
            return  # far below the threshold, measured less than MEASURE_SECONDS ago
        over = self.used_bytes() - self._slack - self._trigger
        if over > 0:
            self.evict_to(self._trigger)
            over = self.used_bytes() - self._slack - self._trigger
        # Measure again before this process alone could cross the threshold.
        self._headroom = -over // 2
        self._measure_at = now + MEASURE_SECONDS

    def expire(self) -> EvictionResult:
        """Remove every expired entry (rows first, files after commit).

        Expired means past its own TTL, or, with ``max_age`` set (any policy), stored more
        than ``max_age`` ago without a TTL of its own. The age pass scans by store time:
        cleanup and eviction only, never a get or a put below the threshold.
        """
        passes: list[tuple[str, float, str]] = [
            ("expire_time IS NOT NULL AND expire_time < ?", time.time(), "expire_time")
        ]
        if self.settings.max_age is not None:
            cutoff = time.time() - self.settings.max_age
            passes.append(("expire_time IS NULL AND store_time < ?", cutoff, "store_time"))
        total = EvictionResult()
        for where, bound, order in passes:
            while True:
                done, _ = self._delete_pass(where, (bound,), order, None)
                total += done
                self.expirations += done.count
                if done.count < EVICT_BATCH:
                    break
        return total

    def evict_to(self, target_bytes: int) -> EvictionResult:
        """Expire, then evict in policy order until ``used_bytes() <= target_bytes``.

        Flushes pending access records first so lru/lfu order is current. Each pass is one
        write transaction over at most 1000 candidates. Policy ``none`` only expires.
        Stops once the rows removed account for the excess measured at the start: SQLite
        frees a page only when it empties, so after scattered deletes the file shrinks
        later (or on ``vacuum()``); chasing the page count would evict far too much. The
        remaining excess is remembered as slack so the next put does not evict again.
        """
        self.flush_access()
        total = self.expire()
        order = self.policy.order
        excess = self.used_bytes() - target_bytes
        removed = 0
        while order is not None and removed < excess:
            need = self.used_bytes() - target_bytes
            if need <= 0:
                break
            done, cost = self._delete_pass(None, (), order, min(need, excess - removed))
            total += done
            removed += cost
            if done.count == 0:
                break
        self._slack = max(0, self.used_bytes() - target_bytes)
        self.evictions += total.count
        self.evicted_bytes += total.bytes
        return total

    def _delete_pass(
        self, where: str | None, args: tuple[Any, ...], order: str, need: int | None
    ) -> tuple[EvictionResult, int]:
        """One transaction: pick candidates in ``order`` (until ``need`` bytes), delete them."""
        return self._freeing(lambda: self._delete_pass_once(where, args, order, need))

    def _delete_pass_once(
        self, where: str | None, args: tuple[Any, ...], order: str, need: int | None
    ) -> tuple[EvictionResult, int]:
        try:
            done, cost, evicted = eviction.delete_pass(
                self._cache, self._track, where, args, order, need, self.count
            )
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._error(exc) from exc
        self._ghosts = self._ghosts or evicted
        return done, cost

    def _remove_batch(self, part: list[tuple[int, float, int]]) -> tuple[EvictionResult, list[int]]:
        """One transaction of ``remove_rows`` (all or nothing, so it can be retried)."""
        try:
            return eviction.remove_batch(self._cache, part)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._error(exc) from exc

    def remove_rows(
        self, rows: Iterable[tuple[int, float, int]]
    ) -> tuple[EvictionResult, list[int]]:
        """Delete rows given as ``(rowid, store_time, payload size)``; returns (removed, skipped).

        For ``evict``/``repair`` plans made earlier: a row rewritten since (new store time
        or size) or already gone is skipped (its rowid returned). One transaction per 1000
        rows; files are deleted after the commit.
        """
        total = EvictionResult()
        skipped: list[int] = []
        batch = list(rows)
        for start in range(0, len(batch), EVICT_BATCH):
            part = batch[start : start + EVICT_BATCH]
            done, missed = self._freeing(functools.partial(self._remove_batch, part))
            total += done
            skipped += missed
        self.evictions += total.count
        self.evicted_bytes += total.bytes
        return total, skipped

    def vacuum(self) -> int:
        """Rebuild the SQLite file to return pages freed by scattered deletes; bytes saved.

        Holds an exclusive lock and rewrites the whole index: for ``clean``/``repair``,
        never the put path.
        """
        before = self.used_bytes()
        try:
            self._cache._sql_retry("VACUUM")
        except DB_ERRORS as exc:
            raise self._error(exc) from exc
        self._slack = 0
        return max(0, before - self.used_bytes())

    # -- lifecycle --------------------------------------------------------------------------

    def stats(self) -> TierStats:
        """Counters since open, plus entries and used bytes (two small queries)."""
        return TierStats(
            "disk",
            self.hits,
            self.misses,
            self.puts,
            self.evictions,
            self.evicted_bytes,
            0,
            self.count(),
            self.used_bytes(),
        )

    def close(self) -> None:
        """Flush pending access records and close this thread's SQLite connection."""
        self.flush_access()
        self._cache.close()
