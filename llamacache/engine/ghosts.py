"""Ghost entries: hashes of recently evicted keys, so a miss can say "more room would have hit".

Kept in each cache's index (``LlcGhost``), so a later process sees the ghosts of an
earlier one's evictions. Only 64-bit hashes are stored, never keys or values. The
table holds about as many ghosts as the cache holds entries: a miss on a ghost is a
hit that a disk tier of twice the size would (roughly) have served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import xxhash

GHOST_MIN = 1_000  # ghosts kept even when the cache holds fewer entries
GHOST_MAX = 200_000  # ... and never more than this

DDL = (
    "CREATE TABLE IF NOT EXISTS LlcGhost (h INTEGER PRIMARY KEY, t REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS LlcGhost_t ON LlcGhost (t)",
)
Sql = Callable[..., Any]


def key_hash(db_key: Any, raw: Any) -> int:
    """A signed 64-bit hash of an index key as diskcache stores it (``key``, ``raw``)."""
    data = db_key if isinstance(db_key, bytes) else repr(db_key).encode("utf-8", "surrogatepass")
    tag = b"r%s:%s:" % (b"1" if raw else b"0", type(db_key).__name__.encode())
    return xxhash.xxh3_64_intdigest(tag + data) - 2**63


def record(sql: Sql, hashes: Iterable[int], now: float, entries: int) -> None:
    """Remember evicted key hashes (inside the caller's transaction) and trim the oldest."""
    rows = [(h, now) for h in hashes]
    if not rows:
        return
    for h, t in rows:
        sql("INSERT OR REPLACE INTO LlcGhost (h, t) VALUES (?, ?)", (h, t))
    cap = min(GHOST_MAX, max(GHOST_MIN, entries))
    ((count,),) = sql("SELECT count(*) FROM LlcGhost").fetchall()
    if count > cap:
        sql(
            "DELETE FROM LlcGhost WHERE h IN (SELECT h FROM LlcGhost ORDER BY t LIMIT ?)",
            (count - cap,),
        )


def contains(sql: Sql, h: int) -> bool:
    """True if ``h`` is a ghost (one primary-key lookup)."""
    return bool(sql("SELECT 1 FROM LlcGhost WHERE h = ?", (h,)).fetchall())


def any_ghosts(sql: Sql) -> bool:
    """True if the table holds at least one ghost."""
    return bool(sql("SELECT 1 FROM LlcGhost LIMIT 1").fetchall())
