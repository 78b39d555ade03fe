"""LlcAccess: lru/lfu recency in a narrow side table next to diskcache's ``Cache`` table.

Writing ``Cache.access_time`` in place rewrites the whole row, value included (~5 us per
row at 100 B, ~27 us at 10 KB); a LlcAccess row costs the same at any value size.
Triggers keep it in step with ``Cache`` (insert, overwrite, delete), whoever writes.
Admin readers see it through ``engine/index.Snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

DDL = (
    "CREATE TABLE IF NOT EXISTS LlcAccess (rowid INTEGER PRIMARY KEY,"
    " access_time REAL NOT NULL DEFAULT 0, access_count INTEGER NOT NULL DEFAULT 0)",
    "CREATE TRIGGER IF NOT EXISTS LlcAccess_insert AFTER INSERT ON Cache BEGIN"
    " INSERT OR REPLACE INTO LlcAccess VALUES (new.rowid, new.access_time, 0); END",
    "CREATE TRIGGER IF NOT EXISTS LlcAccess_update AFTER UPDATE OF store_time ON Cache BEGIN"
    " INSERT OR REPLACE INTO LlcAccess VALUES (new.rowid, new.access_time, 0); END",
    "CREATE TRIGGER IF NOT EXISTS LlcAccess_delete AFTER DELETE ON Cache BEGIN"
    " DELETE FROM LlcAccess WHERE rowid = old.rowid; END",
)
# rows indexed before the side table existed (a cache from an older version)
BACKFILL = (
    "INSERT OR IGNORE INTO LlcAccess SELECT rowid, ifnull(access_time, store_time),"
    " access_count FROM Cache WHERE rowid NOT IN (SELECT rowid FROM LlcAccess)"
)
FLUSH = (
    "UPDATE LlcAccess SET access_time = max(access_time, ?), access_count = access_count + ?"
    " WHERE rowid = (SELECT rowid FROM Cache WHERE key = ? AND raw = ?)"
)
_OBJECTS = (
    "('LlcAccess', 'LlcAccess_insert', 'LlcAccess_update', 'LlcAccess_delete',"
    " 'LlcGhost', 'LlcGhost_t')"
)


def install(sql: Callable[..., Any], transact: Callable[..., Any], extra: Iterable[str]) -> None:
    """Create the table, its triggers and ``extra`` DDL once; backfill pre-existing rows."""
    (have,) = sql(f"SELECT count(*) FROM sqlite_master WHERE name IN {_OBJECTS}").fetchone()
    if have == 6:
        return
    with transact(retry=True):
        for ddl in (*DDL, *extra):
            sql(ddl)
        sql(BACKFILL)
