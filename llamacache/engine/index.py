"""The one owner of a cache directory's index format, for everything that is not a get/put.

``DiskTier`` serves gets and puts; admin commands (inspect, ls, verify, evict, clean,
repair, ``warm --dry-run``) read and fix the same files through this module only, so the
SQLite layout, the value-file tree and the figures derived from them (used bytes, the
eviction limit, strays) are written down once.

Reads go through a ``Snapshot``: a read-only connection holding one read transaction,
so every row a scan yields comes from the same committed state. The index is opened by
SQLite URI: ``mode=ro`` (through SQLite's locks, beside live writers) where possible,
else ``immutable=1`` (a read-only directory, where no writer can be). Nothing in the
directory is created or modified by a snapshot (``mode=ro`` may create the ``-wal`` and
``-shm`` pair any writer would).

Writes (row removal, recount, rebuild) are crash-safe: rows are deleted before files,
and a damaged index is rebuilt beside the old one and renamed into place, so a kill at
any instant leaves either the old index or the complete new one, never an empty one.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
import sqlite3
import stat
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacache.engine import framing, generation, quarantine, reserve, unshared
from llamacache.engine.eviction import POLICIES, ROW_COST_SQL, SIZE_SQL
from llamacache.engine.failures import DB_ERRORS
from llamacache.engine.locking import LOCK_NAME
from llamacache.engine.safety import CACHEDIR_TAG, is_own_name, is_value_name, leads_outside
from llamacache.errors import CorruptEntryError, ReadOnlyCacheError

__all__ = ["DB_NAME", "ROW_COST_SQL", "SIZE_SQL", "Cond", "Problem", "Row", "Snapshot", "Summary"]

DB_NAME = "cache.db"
# what reading an index may raise, mid-scan (a Snapshot names damage as CorruptEntryError)
# or when opening it
ERRORS: tuple[type[Exception], ...] = (CorruptEntryError, *DB_ERRORS)
READ_ERRORS = ERRORS
# A rebuilt index, complete and synced, waiting to be renamed over cache.db (see rebuild).
NEW_DB_NAME = DB_NAME + ".new"
TMP_DIR = "tmp"
SNAPSHOTS_DIR = "snapshots"  # ModelCache.model_path views (ml/model.py)
DEFAULT_TEMP_GRACE = 900.0  # seconds: younger temporaries and orphans may be a live put's
# what the index occupies (live pages) plus what its rows' value files hold
USED_SQL = (
    "SELECT (SELECT page_count FROM pragma_page_count())"
    " - (SELECT freelist_count FROM pragma_freelist_count()),"
    " (SELECT page_size FROM pragma_page_size()),"
    " (SELECT value FROM Settings WHERE key = 'size')"
)
_COPY_COLS = (
    "key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, value"
)
_COLUMNS = (
    "rowid, key, raw, store_time, expire_time, access_time, access_count, tag, "
    f"{SIZE_SQL}, filename"
)
# lru/lfu recency lives in the narrow LlcAccess table (engine/recency.py); readers see it
# through this view of Cache with those two columns taken from LlcAccess where it has the row.
_WITH_ACCESS = (
    "(SELECT c.rowid AS rowid, c.key AS key, c.raw AS raw, c.store_time AS store_time,"
    " c.expire_time AS expire_time, ifnull(a.access_time, c.access_time) AS access_time,"
    " ifnull(a.access_count, c.access_count) AS access_count, c.tag AS tag, c.size AS size,"
    " c.mode AS mode, c.filename AS filename, c.value AS value"
    " FROM Cache c LEFT JOIN LlcAccess a ON a.rowid = c.rowid)"
)
# files the cache directory holds besides value files (at its top level)
KNOWN_TOP = frozenset(
    {
        DB_NAME,
        DB_NAME + "-wal",
        DB_NAME + "-shm",
        DB_NAME + "-journal",
        NEW_DB_NAME,
        LOCK_NAME,
        CACHEDIR_TAG,
        reserve.RESERVE_NAME,  # the space kept so deletes work on a full disk
        generation.FILENAME,  # the change signal other processes read
        unshared.DIR_NAME,  # writes waiting to be shared
    }
)


def disk_limit(settings: Any) -> int:
    """The disk tier's eviction limit in bytes: ``eviction_threshold`` x ``disk_size``."""
    return int(settings.eviction_threshold * settings.disk_size)


def rawfile_meta(tag: bytes | None, path: Path | None) -> framing.EntryMeta | None:
    """The header of a cached raw file whose value file exists, else None (``warm``)."""
    if not tag or path is None or not path.exists():
        return None
    try:
        meta = framing.parse_meta(tag)
    except ValueError:
        return None
    return meta if meta.kind == "rawfile" else None


def exists(directory: Path) -> bool:
    """True when ``directory`` holds an index (a cache that has been used)."""
    return (Path(directory) / DB_NAME).exists()


# -- reading ---------------------------------------------------------------------------------


def _raw_len(tag: bytes | None) -> int | None:
    """SQL function: the uncompressed length recorded in an entry header (None if damaged)."""
    if tag is None:
        return None
    try:
        return framing.parse_meta(tag).raw_len
    except (ValueError, TypeError):
        return None


def damaged(cache: str, exc: BaseException) -> CorruptEntryError:
    """The one error for an index SQLite cannot read (exit 1, names the cache)."""
    why = "malformed database schema" if isinstance(exc, UnicodeDecodeError) else exc
    return CorruptEntryError(cache, "<index>", f"SQLite index is damaged: {why}")


class _Rows:
    """A cursor whose every step reports SQLite damage as :func:`damaged`.

    SQLite reads a page only when a row needs it, so a bad page surfaces mid-scan
    (fetch, iteration), not when the statement starts; rows stream in batches.
    """

    __slots__ = ("_cache", "_cur")

    def __init__(self, cur: sqlite3.Cursor, cache: str) -> None:
        self._cur = cur
        self._cache = cache

    def fetchone(self) -> Any:
        try:
            return self._cur.fetchone()
        except DB_ERRORS as exc:
            raise damaged(self._cache, exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return self._cur.fetchall()
        except DB_ERRORS as exc:
            raise damaged(self._cache, exc) from None

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                batch = self._cur.fetchmany(256)
            except DB_ERRORS as exc:
                raise damaged(self._cache, exc) from None
            if not batch:
                return
            yield from batch


class _Reader:
    """A snapshot's connection as its readers see it: statements whose damage is named."""

    __slots__ = ("_cache", "_con")

    def __init__(self, con: sqlite3.Connection, cache: str) -> None:
        self._con = con
        self._cache = cache

    def execute(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> _Rows:
        try:
            return _Rows(self._con.execute(sql, args), self._cache)
        except DB_ERRORS as exc:
            raise damaged(self._cache, exc) from None


def connect(
    directory: Path, *, cache: str = "?", prefer_ro: bool = False
) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to ``directory/cache.db`` and whether it is ``immutable``.

    ``mode=ro`` when a writer may be live (a ``-wal`` exists) or ``prefer_ro``; a directory
    that refuses it (read-only: SQLite cannot create ``-shm``) falls back to ``immutable``.
    Raises CorruptEntryError (key ``<index>``) when the file is not a readable database,
    ReadOnlyCacheError naming the path when permissions keep us from reading it.
    """
    db = Path(directory) / DB_NAME
    wal = db.with_name(DB_NAME + "-wal")
    modes = ("ro", "immutable") if wal.exists() or prefer_ro else ("immutable",)
    last: sqlite3.Error | None = None
    for mode in modes:
        uri = f"file:{db}?{'mode=ro' if mode == 'ro' else 'immutable=1'}"
        try:
            con = sqlite3.connect(
                uri, uri=True, timeout=10, check_same_thread=False, isolation_level=None
            )
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            last = exc
            continue
        except DB_ERRORS as exc:
            raise damaged(cache, exc) from None
        con.create_function("llc_raw_len", 1, _raw_len, deterministic=True)
        return con, mode == "immutable"
    denied = permission_problem(db, cache)
    if denied is not None:
        raise denied
    raise CorruptEntryError(cache, "<index>", f"cannot open the SQLite index {db}: {last}")


def permission_problem(db: Path, cache: str) -> ReadOnlyCacheError | None:
    """The error naming ``db`` (or its folder) when SQLite could not open it for want of
    permission, else None. That is not damage: a rebuild would only quarantine a sound
    index. Called after an open failed; costs one open and one listdir."""
    try:
        with open(db, "rb"):
            pass
        os.listdir(db.parent)  # SQLite also looks for a -wal/-journal beside it
    except PermissionError as exc:
        return ReadOnlyCacheError(
            f"cache {cache!r}: permission denied reading {exc.filename or db}"
        )
    except OSError:
        pass  # missing, a folder, ...: SQLite's own reason stands
    return None


def decode_key(db_key: Any, raw: Any) -> Hashable:
    """The caller's key from diskcache's (key, raw) columns (pickled keys are unpickled).

    The directory was checked private by whoever made it; a key that does not unpickle
    comes back as its raw bytes rather than failing a whole listing.
    """
    if raw:
        if isinstance(db_key, (bytes, memoryview)):
            return bytes(db_key)
        return db_key if isinstance(db_key, Hashable) else repr(db_key)
    if not isinstance(db_key, (bytes, memoryview)):
        return db_key if isinstance(db_key, Hashable) else repr(db_key)
    try:
        key: Hashable = pickle.loads(bytes(db_key))
        hash(key)
    except Exception:
        return bytes(db_key)
    return key


def key_text(key: Hashable) -> str:
    """How people and ``ls -q`` see a key: strings as they are, anything else as repr."""
    return key if isinstance(key, str) else repr(key)


def _time(value: Any) -> float | None:
    """A stored timestamp as a finite float, or None (NULL, text, inf, 1e300 are not times)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and abs(value) < 1e13 else None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


@dataclass(frozen=True)
class Row:
    """One index row with its header parsed (``meta`` None when the header is damaged).

    Times are sanitised: a NULL, non-numeric or absurd stored time reads as 0.0 (store and
    access) or None (expiry), so no row can make a listing fail.
    """

    rowid: int
    key: Hashable
    db_key: Any  # as stored: str / bytes / int / float, or the pickle of the key
    raw: int
    store_time: float
    expire_time: float | None
    access_time: float
    access_count: int
    tag: bytes | None
    size: int  # payload bytes (file or inline)
    filename: str | None
    meta: framing.EntryMeta | None

    @property
    def key_text(self) -> str:
        return key_text(self.key)

    @property
    def cost(self) -> int:
        """Index and file bytes deleting this row frees (the eviction's ROW_COST_SQL)."""
        klen = len(self.db_key) if isinstance(self.db_key, (str, bytes)) else 8
        return self.size + klen + len(self.tag or b"") + 64


def _row(r: tuple[Any, ...]) -> Row:
    rowid, db_key, raw, store, expire, access, count, tag, size, filename = r
    meta: framing.EntryMeta | None = None
    if isinstance(tag, (bytes, memoryview)):
        tag = bytes(tag)
        try:
            meta = framing.parse_meta(tag)
        except (ValueError, TypeError):
            meta = None
    else:
        tag = None
    return Row(
        int(rowid),
        decode_key(db_key, raw),
        db_key,
        _int(raw),
        _time(store) or 0.0,
        _time(expire),
        _time(access) or 0.0,
        _int(count),
        tag,
        _int(size),
        filename if is_value_name(filename) else None,  # damage names no file
        meta,
    )


@dataclass(frozen=True)
class Cond:
    """One condition on index rows, compiled to SQL here.

    ``field``: key, size, access_time, store_time, access_count, expire_time.
    ``op``: = != < > <= >= for values, ``glob`` (text keys) and ``in`` (a tuple of keys).
    """

    field: str
    op: str
    value: Any


_FIELD_SQL = {
    "size": SIZE_SQL,
    "access_time": "access_time",
    "store_time": "store_time",
    "access_count": "access_count",
    "expire_time": "expire_time",
    "key": "key",
}
_OPS = frozenset({"=", "!=", "<", ">", "<=", ">="})


def _compile(conds: Sequence[Cond]) -> tuple[str, list[Any]]:
    parts: list[str] = []
    args: list[Any] = []
    for c in conds:
        if c.field == "key" and c.op == "glob":
            parts.append("raw = 1 AND typeof(key) = 'text' AND key GLOB ?")
            args.append(c.value)
        elif c.field == "key" and c.op == "in":
            keys = tuple(c.value)
            parts.append(f"raw = 1 AND key IN ({','.join('?' * len(keys))})" if keys else "0")
            args += list(keys)
        elif c.field in _FIELD_SQL and c.op in _OPS:
            col = _FIELD_SQL[c.field]
            if c.field == "expire_time":
                parts.append(f"expire_time IS NOT NULL AND expire_time {c.op} ?")
            else:
                parts.append(f"{col} {c.op} ?")
            args.append(c.value)
        else:
            raise ValueError(f"not an index condition: {c}")
    return " AND ".join(f"({p})" for p in parts), args


SORT_FIELDS = ("size", "access_time", "store_time", "access_count", "key", "expire_time")


@dataclass(frozen=True)
class Summary:
    """Index-wide figures in one SQL scan (no value file is opened)."""

    entries: int
    payload_bytes: int
    file_entries: int
    file_bytes: int
    stored_bytes: int  # payload bytes of entries with a valid header
    raw_bytes: int  # their uncompressed size
    oldest: float | None
    newest: float | None
    last_access: float | None
    expired: int
    expired_bytes: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``kind`` is corrupt, missing, orphan, stale_tmp or index."""

    kind: str
    key: str | None
    path: str | None
    detail: str
    rowid: int | None = None
    store_time: float | None = None
    size: int = 0


class Snapshot:
    """One read-only, consistent view of a cache's index (a context manager).

    Holds one read transaction from open to close: a scan sees one committed state even
    while writers commit. Raises CorruptEntryError when the index cannot be opened.
    """

    def __init__(self, directory: Path, *, cache: str = "?", prefer_ro: bool = False) -> None:
        self.directory = Path(directory)
        self.cache = cache
        self._con, self.immutable = connect(self.directory, cache=cache, prefer_ro=prefer_ro)
        # every read below maps SQLite damage met mid-scan to CorruptEntryError
        self.con = _Reader(self._con, cache)
        try:
            self.con.execute("BEGIN")
            found = self.con.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'LlcAccess'"
            ).fetchone()
        except CorruptEntryError:
            self._con.close()
            raise
        self._table = _WITH_ACCESS if found else "Cache"

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._con.execute("ROLLBACK")
        self._con.close()

    # -- rows ----------------------------------------------------------------------------

    def count(self, conds: Sequence[Cond] = ()) -> int:
        where, args = _compile(conds)
        sql = f"SELECT count(*) FROM {self._table}" + (f" WHERE {where}" if where else "")
        ((n,),) = self.con.execute(sql, args).fetchall()
        return int(n)

    def rows(
        self,
        conds: Sequence[Cond] = (),
        *,
        order: str = "rowid",
        desc: bool = False,
        limit: int | None = None,
        policy: str | None = None,
    ) -> Iterator[Row]:
        """Rows matching ``conds``; streamed, never all in memory.

        ``order`` is one of SORT_FIELDS or ``rowid``; ``policy`` (a policy name) orders by
        that eviction policy instead (lru for policy none).
        """
        where, args = _compile(conds)
        if policy is not None:
            clause = f"{POLICIES[policy].order or 'access_time'}, rowid"
        elif order == "rowid":
            clause = "rowid DESC" if desc else "rowid"
        else:
            col = _FIELD_SQL[order]
            clause = f"{col} {'DESC' if desc else 'ASC'}, rowid"
        sql = f"SELECT {_COLUMNS} FROM {self._table}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {clause}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for r in self.con.execute(sql, args):
            yield _row(r)

    def row(self, rowid: int) -> Row | None:
        found = self.con.execute(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE rowid = ?", (rowid,)
        ).fetchone()
        return None if found is None else _row(found)

    def value_of(self, rowid: int) -> bytes | None:
        """The inline payload of one row (None for file-backed rows)."""
        found = self.con.execute("SELECT value FROM Cache WHERE rowid = ?", (rowid,)).fetchone()
        return found[0] if found is not None and isinstance(found[0], bytes) else None

    def lookup(self, key: str, now: float) -> tuple[bytes | None, Path | None] | None:
        """``(header, value file or None)`` of an unexpired text key, or None (``warm``)."""
        found = self.con.execute(
            "SELECT tag, filename FROM Cache WHERE key = ? AND raw = 1"
            " AND (expire_time IS NULL OR expire_time > ?)",
            (key, now),
        ).fetchone()
        if found is None:
            return None
        tag, filename = found
        return (bytes(tag) if isinstance(tag, bytes) else None), (
            self.directory / filename if is_value_name(filename) else None
        )

    def text_keys(self, pattern: str) -> Iterator[tuple[int, str, float]]:
        """(rowid, key, store time) of text keys matching a glob."""
        for rowid, key, stored in self.con.execute(
            "SELECT rowid, key, store_time FROM Cache"
            " WHERE raw = 1 AND typeof(key) = 'text' AND key GLOB ?",
            (pattern,),
        ):
            yield int(rowid), key, _time(stored) or 0.0

    # -- figures -------------------------------------------------------------------------

    def summary(self, now: float) -> Summary:
        """Counts, volume, ages and compression of the whole index; one scan of the table.

        Only compressed entries (codec byte != 0) need their header parsed for the raw
        size, so a cache of raw files costs no Python per row.
        """
        (r,) = self.con.execute(
            "SELECT count(*), total(" + SIZE_SQL + "), count(filename), total(size),"
            " min(store_time), max(store_time), max(access_time),"
            " total(CASE WHEN expire_time IS NOT NULL AND expire_time < ?1 THEN 1 END),"
            " total(CASE WHEN expire_time IS NOT NULL AND expire_time < ?1 THEN "
            + SIZE_SQL
            + " END),"
            " total(CASE WHEN substr(tag, 5, 1) = x'00' THEN " + SIZE_SQL + " END),"
            " total(CASE WHEN substr(tag, 5, 1) != x'00' THEN llc_raw_len(tag) END),"
            " total(CASE WHEN substr(tag, 5, 1) != x'00' AND llc_raw_len(tag) IS NOT NULL"
            " THEN " + SIZE_SQL + " END)"
            " FROM " + self._table,
            (now,),
        ).fetchall()
        n, payload, nfiles, fbytes, oldest, newest, last, expired, exp_bytes, plain, raw_c, comp = r
        return Summary(
            entries=int(n),
            payload_bytes=int(payload),
            file_entries=int(nfiles),
            file_bytes=int(fbytes),
            stored_bytes=int(plain + comp),
            raw_bytes=int(plain + raw_c),
            oldest=_time(oldest),
            newest=_time(newest),
            last_access=_time(last),
            expired=int(expired),
            expired_bytes=int(exp_bytes),
        )

    def index_bytes(self) -> int:
        """Live SQLite pages plus value-file bytes (what eviction measures)."""
        return index_bytes(self.con)

    def used_bytes(self, *, skip: Path | None = None) -> int:
        """What the cache occupies: index pages, value files and leftover temporaries."""
        return self.index_bytes() + leftover_bytes(self.directory, skip=skip)

    def aged(self, before: float, now: float) -> tuple[int, int]:
        """(count, payload bytes) of unexpired rows stored before ``before`` (max_age)."""
        (n, b) = self.con.execute(
            f"SELECT count(*), total({SIZE_SQL}) FROM Cache WHERE store_time < ?"
            " AND NOT (expire_time IS NOT NULL AND expire_time < ?)",
            (before, now),
        ).fetchone()
        return int(n), int(b)

    def totals(self) -> tuple[int, int]:
        """(rows, payload bytes): what a full verify will examine."""
        (n, b) = self.con.execute(f"SELECT count(*), total({SIZE_SQL}) FROM Cache").fetchone()
        return int(n), int(b)

    def integrity(self, quick: bool) -> list[str]:
        """SQLite's own check of the file: ``["ok"]`` when sound."""
        check = self.con.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check")
        return [str(r[0]) for r in check.fetchall()]

    def filenames(self) -> set[str]:
        return {
            r[0] for r in self.con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")
        }

    # -- strays --------------------------------------------------------------------------

    def strays(
        self,
        now: float,
        *,
        grace: float = 0.0,
        skip: Path | None = None,
    ) -> tuple[list[Problem], list[Problem]]:
        """(orphans, temporaries) the index does not know, both older than ``grace`` seconds.

        Candidates are re-checked against the current index (a fresh read), so a file
        renamed into place just before its row committed is not called an orphan; a
        temporary some process holds open is never one.
        """
        known = self.filenames()
        values, tmps = _walk_files(self.directory, skip)
        # the grace protects a live put's files; a planted link is never one
        cands = [
            v
            for v in values
            if v[0] not in known and (now - v[2] >= grace or os.path.islink(self.directory / v[0]))
        ]
        if cands:
            late = _indexed_now(self.directory, [c[0] for c in cands])
            cands = [c for c in cands if c[0] not in late]
        orphans = [
            Problem("orphan", None, rel, self._stray_detail(rel, size), size=size)
            for rel, size, _m in cands
        ]
        old = [t for t in tmps if now - t[2] >= grace]
        held = _held_open(self.directory, [t[0] for t in old]) if old else set()
        stale = [
            Problem(
                "stale_tmp",
                None,
                rel,
                f"half-written temporary file, {now - m:.0f}s old",
                size=size,
            )
            for rel, size, m in old
            if rel not in held
        ]
        return orphans, stale

    def _stray_detail(self, rel: str, size: int) -> str:
        """What an orphan is, for people: a planted link says where it leads (unfollowed)."""
        path = self.directory / rel
        try:
            return f"symbolic link (to {os.readlink(path)}) not made by llamacache; not followed"
        except OSError:  # not a link (or gone meanwhile)
            return f"unknown file ({size} bytes) not in the index"


def index_bytes(con: Any) -> int:
    """Live SQLite pages plus value-file bytes: the one formula for an index's footprint."""
    ((pages, page_size, files),) = con.execute(USED_SQL).fetchall()
    return int(pages) * int(page_size) + _int(files)


def used_bytes_at(directory: Path) -> int:
    """What the cache in ``directory`` occupies now (as ``DiskTier.used_bytes``), read-only:
    0 when it has no index or the index cannot be read. Costs one SQLite open; writes nothing.
    """
    if not exists(directory):
        return 0
    try:
        con, _immutable = connect(directory)
    except CorruptEntryError:
        return 0
    try:
        return index_bytes(con)
    except DB_ERRORS:
        return 0
    finally:
        con.close()


def _indexed_now(directory: Path, names: list[str]) -> set[str]:
    """Which of ``names`` the index holds right now (a fresh connection, not a snapshot)."""
    try:
        con, _ = connect(directory)
    except CorruptEntryError:
        return set(names)  # cannot tell: treat none as orphans
    try:
        out: set[str] = set()
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            marks = ",".join("?" * len(part))
            out |= {
                r[0]
                for r in con.execute(
                    f"SELECT filename FROM Cache WHERE filename IN ({marks})", part
                )
            }
        return out
    except DB_ERRORS:
        return set(names)
    finally:
        con.close()


FileList = list[tuple[str, int, float]]  # (relative path, size, mtime)


def _is_leftover_archive(name: str) -> bool:
    """A backup's ``.NAME.tmp-PID`` left by a killed run (renamed into place on success)."""
    stem, sep, pid = name.rpartition(".tmp-")
    return bool(sep) and name.startswith(".") and pid.isdigit() and bool(stem)


def _own_files(folder: str, base: str) -> FileList:
    """Files below ``folder`` with names llamacache creates (someone else's file is never
    an orphan to delete), and every symbolic link there (the cache makes none outside its
    views: a planted one, removed as itself, never followed), as (path relative to
    ``base``, size, mtime)."""
    found: FileList = []
    for dirpath, dirs, files in os.walk(folder):  # never descends into a linked folder
        for name in files + dirs:
            full = os.path.join(dirpath, name)
            try:
                stt = os.lstat(full)
            except FileNotFoundError:
                continue
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            if stat.S_ISLNK(stt.st_mode) or (name in files and is_own_name(rel)):
                found.append((rel, stt.st_size, stt.st_mtime))
    return found


def _walk_files(directory: Path, skip: Path | None = None) -> tuple[FileList, FileList]:
    """(value-tree files, temporaries) as (relative path, size, mtime); skips known files.

    Nothing here follows a link: a link is listed as itself. Files that vanish while
    being listed are left out.
    """
    values: FileList = []
    tmps: FileList = []
    base = str(directory)
    skip_top = None  # a temp_dir configured inside the cache (the system cache's) is not ours
    if skip is not None and skip.is_relative_to(directory) and skip != directory:
        skip_top = skip.relative_to(directory).parts[0]
    try:
        tops = list(os.scandir(base))
    except FileNotFoundError:
        return values, tmps
    for top in tops:
        if top.name in KNOWN_TOP or top.name in (quarantine.DIR_NAME, skip_top):
            continue
        try:
            if top.name == SNAPSHOTS_DIR and top.is_dir(follow_symlinks=False):
                continue  # model_path views
            if top.is_dir(follow_symlinks=False):
                (tmps if top.name == TMP_DIR else values).extend(_own_files(top.path, base))
            elif _is_leftover_archive(top.name):  # a killed backup's partial archive
                stt = top.stat(follow_symlinks=False)
                tmps.append((top.name, stt.st_size, stt.st_mtime))
            elif top.name == SNAPSHOTS_DIR or top.is_symlink():
                # a link (the cache makes none here) or a file named as our views: planted
                stt = top.stat(follow_symlinks=False)
                values.append((top.name, stt.st_size, stt.st_mtime))
        except FileNotFoundError:
            continue
    return values, tmps


def files_without_index(directory: Path, *, skip: Path | None = None) -> int:
    """How many files named as the cache names its own lie in ``directory`` although it
    has no index (0 when it has one, or no such files).

    Without an index nothing can say which of them are entries, orphans or someone
    else's files that happen to look like ours, so sweeps leave such a folder alone and
    report this count instead. Walks the folder once; never follows a link.
    """
    if exists(directory):
        return 0
    values, tmps = _walk_files(Path(directory), skip)
    return len(values) + len(tmps)


def leftover_bytes(directory: Path, *, skip: Path | None = None) -> int:
    """Bytes of temporaries (``tmp/``, killed backups' ``.tmp-PID``) in the directory.

    They occupy the disk like entries do, so "used" counts them until ``clean`` sweeps them.
    """
    total = 0
    tmp = Path(directory) / TMP_DIR
    if tmp.is_dir() and not tmp.is_symlink():
        for dirpath, _dirs, files in os.walk(tmp):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    with contextlib.suppress(OSError):
        for top in os.scandir(directory):
            if _is_leftover_archive(top.name):
                with contextlib.suppress(OSError):
                    total += top.stat(follow_symlinks=False).st_size
    return total


def _held_open(directory: Path, rels: list[str]) -> set[str]:
    """Which of these files some process has open (Linux ``/proc``; empty elsewhere).

    Only asked about temporaries already older than the grace, so rarely and briefly.
    """
    wanted: dict[tuple[int, int], str] = {}
    for rel in rels:
        with contextlib.suppress(OSError):
            st = os.lstat(Path(directory) / rel)
            wanted[(st.st_dev, st.st_ino)] = rel
    held: set[str] = set()
    if not wanted or not os.path.isdir("/proc/self/fd"):
        return held
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            hit = wanted.get((st.st_dev, st.st_ino))
            if hit is not None:
                held.add(hit)
    return held


def dangling_snapshot_links(directory: Path) -> list[tuple[Path, int]]:
    """Links under ``snapshots/`` whose cached file is gone (evicted): what ``clean`` prunes.

    Walks without following links (a linked folder is not entered) and only ever
    unlinks a link itself, so nothing a link points at is touched.
    """
    root = Path(directory) / SNAPSHOTS_DIR
    if not root.is_dir() or root.is_symlink():
        return []
    out: list[tuple[Path, int]] = []
    for dirpath, dirs, files in os.walk(root):
        for name in files + dirs:
            p = Path(dirpath) / name
            if p.is_symlink() and not p.exists():
                out.append((p, 0))
    return out


def remove_files(paths: Sequence[tuple[Path, int]], root: Path) -> int:
    """Unlink strays (never following a link) and prune the folders they emptied; count.

    A file that vanished meanwhile is skipped; nothing outside ``root`` is touched.
    """
    removed = 0
    for p, _size in paths:
        if not p.is_relative_to(root) or leads_outside(root, p.parent):
            continue
        try:
            p.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            continue
        parent = p.parent
        while parent != root and parent.is_relative_to(root) and parent.name != TMP_DIR:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
    return removed


def prune_empty_folders(directory: Path) -> None:
    """Remove empty ``xx/yy`` value folders (a crash between creating one and renaming a
    value into it leaves it behind). A put racing this retries its rename; a folder that
    vanishes meanwhile is skipped."""
    try:
        tops = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for top in tops:
        try:
            if len(top.name) != 2 or not top.is_dir(follow_symlinks=False):
                continue
            subs = list(os.scandir(top.path))
        except OSError:
            continue
        for sub in subs:
            with contextlib.suppress(OSError):
                if sub.is_dir(follow_symlinks=False):
                    os.rmdir(sub.path)  # fails (and is left) unless empty
        with contextlib.suppress(OSError):
            os.rmdir(top.path)


# -- writing (admin lock held by the caller) ---------------------------------------------


def _writer(directory: Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(directory) / DB_NAME, timeout=60, isolation_level=None)


def recount(directory: Path) -> int:
    """Recompute diskcache's Settings count and size from the rows (they drift after a
    crash); returns the row count. One write transaction."""
    con = _writer(directory)
    try:
        con.execute("BEGIN IMMEDIATE")
        (n, total) = con.execute("SELECT count(*), total(size) FROM Cache").fetchone()
        con.execute("UPDATE Settings SET value = ? WHERE key = 'count'", (int(n),))
        con.execute("UPDATE Settings SET value = ? WHERE key = 'size'", (int(total),))
        con.execute("COMMIT")
    finally:
        con.close()
    return int(n)


def _salvage(old: sqlite3.Connection, batch_size: int = 200) -> list[tuple[object, ...]]:
    """Every row still readable: in rowid batches, and row by row through a batch that
    fails, so a damaged page loses only the rows stored on it."""
    select = f"SELECT rowid, {_COPY_COLS} FROM Cache"
    try:
        old.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DB_ERRORS:
        return []  # not even the schema is readable
    try:
        (top,) = old.execute("SELECT max(rowid) FROM Cache").fetchone()
    except DB_ERRORS:
        top = None
    # without a known last rowid, give up after this many unreadable batches in a row
    patience = None if top is not None else 50
    top = int(top) if top is not None else 1_000_000
    rows: list[tuple[object, ...]] = []
    last = failed = 0
    while last < top:
        try:
            batch = old.execute(
                f"{select} WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch_size)
            ).fetchall()
        except DB_ERRORS:
            found = 0
            for rowid in range(last + 1, last + batch_size + 1):
                try:
                    got = [r[1:] for r in old.execute(f"{select} WHERE rowid = ?", (rowid,))]
                except DB_ERRORS:
                    continue
                rows += got
                found += len(got)
            last += batch_size
            failed = 0 if found else failed + 1
            if patience is not None and failed >= patience:
                break
            continue
        if not batch:
            break
        rows += [r[1:] for r in batch]
        last = int(batch[-1][0])
    return rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish_rebuild(directory: Path) -> bool:
    """Rename a complete rebuilt index (``cache.db.new``) over ``cache.db``; True if done.

    A rebuild killed after the new index was complete resumes here: the old ``-wal``
    and ``-shm`` go first (a WAL must never be replayed onto another file), then the
    rename. Idempotent; safe to call at every repair.
    """
    directory = Path(directory)
    new = directory / NEW_DB_NAME
    if not new.exists():
        return False
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / (DB_NAME + suffix))
    os.replace(new, directory / DB_NAME)
    _fsync(directory)
    return True


def rebuild(directory: Path, reason: str) -> int:
    """Rebuild a damaged index from its readable rows, crash-safe; rows salvaged.

    1. the old index (with its WAL) is copied into a quarantine folder, which is read;
    2. a fresh index is built in ``tmp/``, synced and renamed to ``cache.db.new``;
    3. ``finish_rebuild`` moves it over ``cache.db``.
    A kill before 3 leaves the old index in place (repair runs again); a kill during 3
    leaves ``cache.db.new``, which the next repair finishes. Never an empty index.
    """
    import diskcache

    directory = Path(directory)
    folder = quarantine.store(directory, "<index>", reason)
    for suffix in ("", "-wal"):
        src = directory / (DB_NAME + suffix)
        if src.exists():
            shutil.copyfile(src, folder / src.name)
    rows: list[tuple[object, ...]] = []
    try:
        old = sqlite3.connect(f"file:{folder / DB_NAME}?mode=ro", uri=True)
        try:
            rows = _salvage(old)
        finally:
            old.close()
    except DB_ERRORS:
        rows = []
    if not rows and _walk_files(directory)[0]:
        # an empty index beside value files would make every one of them an orphan
        raise CorruptEntryError(
            directory.name,
            "<index>",
            f"no row of the damaged index could be read; it is left in place (a copy is in "
            f"{folder}) and no value file was touched",
        )
    work = directory / TMP_DIR / f"rebuild-{os.getpid()}-{os.urandom(4).hex()}"
    work.mkdir(parents=True, mode=0o700)
    try:
        diskcache.Cache(str(work), eviction_policy="none", cull_limit=0).close()  # fresh schema
        con = sqlite3.connect(work / DB_NAME, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = DELETE")  # one self-contained file to rename
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                f"INSERT OR IGNORE INTO Cache({_COPY_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            (n, total) = con.execute("SELECT count(*), total(size) FROM Cache").fetchone()
            con.execute("UPDATE Settings SET value = ? WHERE key = 'count'", (int(n),))
            con.execute("UPDATE Settings SET value = ? WHERE key = 'size'", (int(total),))
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode = WAL")  # as diskcache opens it
        finally:
            con.close()
        _fsync(work / DB_NAME)
        os.replace(work / DB_NAME, directory / NEW_DB_NAME)
        _fsync(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finish_rebuild(directory)
    return len(rows)


def current(directory: Path, rowid: int) -> Row | None:
    """One row as it is now (a fresh read-only read), or None when gone or unreadable."""
    try:
        with Snapshot(directory) as snap:
            return snap.row(rowid)
    except (CorruptEntryError, sqlite3.DatabaseError):
        return None
