"""Counters that outlive the process: one small table in each cache's SQLite index.

Processes count in memory and add their deltas here in one transaction now and
then (``UPDATE value = value + ?``), so concurrent processes merge by addition and
a process killed mid-run loses only its unflushed deltas: a transaction either
lands whole or not at all. ``inspect`` and ``stats`` read the table, also from a
read-only cache directory (``immutable=1``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from llamacache.engine.failures import DB_ERRORS
from llamacache.errors import LlamacacheError

DB_NAME = "cache.db"  # diskcache's index file
# what a flush may meet: the index busy or damaged, the disk, our own errors
FLUSH_ERRORS = (sqlite3.Error, OSError, LlamacacheError)
_TABLE = "LlcMetrics"
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
    " tier TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (tier, name)) WITHOUT ROWID"
)

Counters = dict[str, dict[str, int]]  # tier -> counter name -> value


def _connect(cache_dir: Path) -> sqlite3.Connection:
    con = sqlite3.connect(cache_dir / DB_NAME, timeout=60, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 60000")
    return con


def add(cache_dir: Path, deltas: Mapping[tuple[str, str], int]) -> None:
    """Add ``{(tier, name): delta}`` to the stored counters in one transaction."""
    rows = [(tier, name, int(d)) for (tier, name), d in deltas.items() if d]
    if not rows:
        return
    con = _connect(cache_dir)
    try:
        con.execute(_CREATE)
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(
                f"INSERT INTO {_TABLE}(tier, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(tier, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def read(cache_dir: Path) -> Counters:
    """The stored counters ({} when none were ever flushed, or the index is damaged:
    counters are advisory, and ``verify`` is what reports the damage); works read-only."""
    try:
        return _read(cache_dir)
    except DB_ERRORS:
        return {}


def _read(cache_dir: Path) -> Counters:
    db = cache_dir / DB_NAME
    if not db.exists():
        return {}
    if not db.with_name(DB_NAME + "-wal").exists():
        # No writer has uncommitted pages: read the file as is, creating no -wal/-shm.
        return _rows_to_counters(_select_from(f"file:{db}?immutable=1"))
    try:
        rows = _select_from(f"file:{db}?mode=ro")
    except sqlite3.OperationalError:
        # A read-only directory cannot hold the WAL's shared memory: read the file as is.
        rows = _select_from(f"file:{db}?immutable=1")
    return _rows_to_counters(rows)


def _rows_to_counters(rows: list[tuple[str, str, int]]) -> Counters:
    out: Counters = {}
    for tier, name, value in rows:
        out.setdefault(tier, {})[name] = int(value)
    return out


def _select_from(uri: str) -> list[tuple[str, str, int]]:
    con = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        return con.execute(f"SELECT tier, name, value FROM {_TABLE}").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        con.close()


def has_ghosts(cache_dir: Path) -> bool:
    """True if the cache's index remembers evicted keys (``engine/ghosts.py``); read-only."""
    db = cache_dir / DB_NAME
    if not db.exists():
        return False
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT 1 FROM LlcGhost LIMIT 1").fetchone() is not None
    except DB_ERRORS:
        return False  # no such table (a cache no engine of this version opened), or damage
    finally:
        con.close()


def reset(cache_dir: Path) -> None:
    """Zero every stored counter (``--reset-stats``)."""
    if not (cache_dir / DB_NAME).exists():
        return
    con = _connect(cache_dir)
    try:
        con.execute(_CREATE)
        con.execute(f"DELETE FROM {_TABLE}")
    finally:
        con.close()
