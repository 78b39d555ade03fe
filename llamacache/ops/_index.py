"""Read-only access to one cache's diskcache index, for inspect / ls / verify / evict plans.

Admin reads never go through ``TieredCache``: opening a cache creates directories, a
``CACHEDIR.TAG`` and indexes, and ``verify`` must write nothing. So the index is opened
by SQLite URI: ``immutable=1`` when no ``-wal`` file exists (no writer has uncommitted
pages, and SQLite then creates no ``-shm``/``-wal`` either), else ``mode=ro``; a
read-only directory that refuses ``mode=ro`` falls back to ``immutable=1``.
Figures come from SQL over the index (counts, sums), never from walking value files.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacache.engine import framing
from llamacache.errors import CorruptEntryError

DB_NAME = "cache.db"
# payload bytes of a row: file size, or the inline blob's length (length() reads no blob pages)
SIZE_SQL = "(size + ifnull(length(value), 0))"
# what deleting a row frees in the index as well (the engine's eviction uses the same cost)
ROW_COST_SQL = f"{SIZE_SQL} + ifnull(length(key), 8) + ifnull(length(tag), 0) + 64"
_COLUMNS = (
    "rowid, key, raw, store_time, expire_time, access_time, access_count, tag, "
    f"{SIZE_SQL}, filename"
)


def _raw_len(tag: bytes | None) -> int | None:
    """SQL function: the uncompressed length recorded in an entry header (None if damaged)."""
    if tag is None:
        return None
    try:
        return framing.parse_meta(tag).raw_len
    except ValueError:
        return None


def connect(
    directory: Path, *, cache: str = "?", prefer_ro: bool = False
) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to ``directory/cache.db`` and whether it is ``immutable``.

    Raises CorruptEntryError (key ``<index>``) when the file is not a readable SQLite
    database. Costs one open; no file in the directory is created or modified (with
    ``prefer_ro``, SQLite may create the ``-wal``/``-shm`` pair a writer would anyway).
    """
    db = Path(directory) / DB_NAME
    wal = db.with_name(DB_NAME + "-wal")
    modes = ("ro", "immutable") if wal.exists() or prefer_ro else ("immutable",)
    last: sqlite3.Error | None = None
    for mode in modes:
        uri = f"file:{db}?{'mode=ro' if mode == 'ro' else 'immutable=1'}"
        try:
            con = sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            last = exc
            continue
        except sqlite3.DatabaseError as exc:
            raise CorruptEntryError(cache, "<index>", f"SQLite index is damaged: {exc}") from None
        con.create_function("llc_raw_len", 1, _raw_len, deterministic=True)
        return con, mode == "immutable"
    raise CorruptEntryError(cache, "<index>", f"cannot open the SQLite index {db}: {last}")


def settings_table(con: sqlite3.Connection) -> dict[str, Any]:
    """diskcache's Settings table (count, size, ...) as a dict."""
    return dict(con.execute("SELECT key, value FROM Settings"))


def used_bytes(con: sqlite3.Connection) -> int:
    """Live SQLite pages plus value-file bytes: the engine's ``DiskTier.used_bytes``."""
    ((page_size,),) = con.execute("PRAGMA page_size").fetchall()
    ((pages,),) = con.execute("PRAGMA page_count").fetchall()
    ((free,),) = con.execute("PRAGMA freelist_count").fetchall()
    files = settings_table(con).get("size") or 0
    return int((pages - free) * page_size + int(files))


def decode_key(db_key: Any, raw: int) -> Hashable:
    """The caller's key from diskcache's (key, raw) columns (pickled keys are unpickled).

    The directory was checked private by whoever made it; a key that does not unpickle
    comes back as its raw bytes rather than failing a whole listing.
    """
    if raw:
        return bytes(db_key) if isinstance(db_key, (bytes, memoryview)) else db_key
    try:
        key: Hashable = pickle.loads(bytes(db_key))
    except Exception:
        return bytes(db_key)
    return key


def key_text(key: Hashable) -> str:
    """How people and ``ls -q`` see a key: strings as they are, anything else as repr."""
    return key if isinstance(key, str) else repr(key)


@dataclass(frozen=True)
class Row:
    """One index row with its header parsed (``meta`` None when the header is damaged)."""

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


def _row(r: tuple[Any, ...]) -> Row:
    rowid, db_key, raw, store, expire, access, count, tag, size, filename = r
    meta: framing.EntryMeta | None
    try:
        meta = framing.parse_meta(tag) if tag is not None else None
    except ValueError:
        meta = None
    return Row(
        rowid,
        decode_key(db_key, raw),
        db_key,
        raw,
        store,
        expire,
        access,
        count,
        tag,
        int(size or 0),
        filename,
        meta,
    )


def rows(
    con: sqlite3.Connection,
    where: str = "",
    args: tuple[Any, ...] = (),
    order: str = "rowid",
    limit: int | None = None,
) -> Iterator[Row]:
    """Rows matching a WHERE clause, in ``order``; streamed, never all in memory."""
    sql = f"SELECT {_COLUMNS} FROM Cache"
    if where:
        sql += f" WHERE {where}"
    sql += f" ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    for r in con.execute(sql, args):
        yield _row(r)


def value_of(con: sqlite3.Connection, rowid: int) -> bytes | None:
    """The inline payload of one row (None for file-backed rows)."""
    found = con.execute("SELECT value FROM Cache WHERE rowid = ?", (rowid,)).fetchone()
    return None if found is None or found[0] is None else bytes(found[0])


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


def summary(con: sqlite3.Connection, now: float) -> Summary:
    """Counts, volume, ages and compression of the whole index; one scan of the table.

    Only compressed entries (codec byte != 0) need their header parsed for the raw size,
    so a cache of raw files costs no Python per row.
    """
    (r,) = con.execute(
        "SELECT count(*), total(" + SIZE_SQL + "), count(filename), total(size),"
        " min(store_time), max(store_time), max(access_time),"
        " total(CASE WHEN expire_time IS NOT NULL AND expire_time < ?1 THEN 1 END),"
        " total(CASE WHEN expire_time IS NOT NULL AND expire_time < ?1 THEN " + SIZE_SQL + " END),"
        " total(CASE WHEN substr(tag, 5, 1) = x'00' THEN " + SIZE_SQL + " END),"
        " total(CASE WHEN substr(tag, 5, 1) != x'00' THEN llc_raw_len(tag) END),"
        " total(CASE WHEN substr(tag, 5, 1) != x'00' AND llc_raw_len(tag) IS NOT NULL"
        " THEN " + SIZE_SQL + " END)"
        " FROM Cache",
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
        oldest=oldest,
        newest=newest,
        last_access=last,
        expired=int(expired),
        expired_bytes=int(exp_bytes),
    )
