"""Eviction for the disk tier: each policy's order as data, and the SQL passes that delete.

A pass is one write transaction: pick candidates in policy order, delete their index
rows, and delete their files only after the commit, so a crash leaves orphan files
(swept by ``clean``/``repair``), never a row that points at a missing file. Entries
evicted for room (not expired) are remembered as ghosts (see ghosts.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llamacache.engine import ghosts
from llamacache.engine.protocol import EvictionResult

EVICT_BATCH = 1000  # candidate rows examined per eviction transaction
SIZE_SQL = "(size + ifnull(length(value), 0))"  # payload bytes of a row, file or inline
ROW_COST_SQL = f"{SIZE_SQL} + ifnull(length(key), 8) + ifnull(length(tag), 0) + 64"


@dataclass(frozen=True)
class Policy:
    """How one eviction policy is kept: the indexes it needs and its eviction order."""

    indexes: tuple[str, ...]
    order: str | None  # ORDER BY clause for eviction candidates; None = never evict
    track_access: bool = False  # needs batched access times / counts (read from LlcAccess)


POLICIES: dict[str, Policy] = {
    "lru": Policy(
        ("CREATE INDEX IF NOT EXISTS LlcAccess_time ON LlcAccess (access_time)",),
        "access_time",
        track_access=True,
    ),
    "fifo": Policy(
        ("CREATE INDEX IF NOT EXISTS Cache_store_time ON Cache (store_time)",), "store_time"
    ),
    "lfu": Policy(
        ("CREATE INDEX IF NOT EXISTS LlcAccess_lfu ON LlcAccess (access_count, access_time)",),
        "access_count, access_time",
        track_access=True,
    ),
    "time": Policy(
        ("CREATE INDEX IF NOT EXISTS Cache_store_time ON Cache (store_time)",), "store_time"
    ),
    "size": Policy(
        (f"CREATE INDEX IF NOT EXISTS Cache_llc_size ON Cache ({SIZE_SQL})",),
        f"{SIZE_SQL} DESC",
    ),
    "none": Policy((), None),
}


def delete_pass(
    cache: Any,
    track: bool,
    where: str | None,
    args: tuple[Any, ...],
    order: str,
    need: int | None,
    count: Callable[[], int],
) -> tuple[EvictionResult, int, bool]:
    """One transaction over at most EVICT_BATCH candidates in ``order``, stopping once their
    estimated cost reaches ``need`` bytes (all of them when None).

    ``where`` None means eviction for room; otherwise (expiry) no ghosts are recorded.
    Returns (removed, estimated index bytes freed, whether ghosts were recorded). Raises
    what diskcache/SQLite raise; the caller maps it.
    """
    # lru/lfu walk LlcAccess's index and look each row up by rowid (CROSS JOIN fixes
    # that order); the other policies read Cache alone.
    if track and where is None:
        source = "LlcAccess a CROSS JOIN Cache c ON c.rowid = a.rowid"
        order = ", ".join(f"a.{col.strip()}" for col in order.split(","))
    else:
        source = "Cache c"
    select = (
        f"SELECT c.rowid, filename, {SIZE_SQL}, {ROW_COST_SQL}, key, raw FROM {source}"
        f"{' WHERE ' + where if where else ''} ORDER BY {order} LIMIT ?"
    )
    chosen: list[int] = []
    hashes: list[int] = []
    freed = cost = 0
    with cache._transact(retry=False) as (sql, cleanup):
        rows = sql(select, (*args, EVICT_BATCH)).fetchall()
        for rowid, filename, size, row_cost, key, raw in rows:
            chosen.append(rowid)
            hashes.append(ghosts.key_hash(key, raw))
            cleanup(filename)  # runs after COMMIT: rows go first, files after
            freed += size
            cost += row_cost
            if need is not None and cost >= need:
                break
        recorded = False
        if chosen:
            sql(f"DELETE FROM Cache WHERE rowid IN ({','.join(map(str, chosen))})")
            if where is None:  # evicted for room (not expired): remember as ghosts
                ghosts.record(sql, hashes, time.time(), count())
                recorded = True
    return EvictionResult(len(chosen), freed), cost, recorded


def remove_batch(
    cache: Any, part: list[tuple[int, float, int]]
) -> tuple[EvictionResult, list[int]]:
    """Delete ``(rowid, store_time, size)`` rows unchanged since they were planned.

    One transaction, all or nothing (so it can be retried); a row rewritten since or
    already gone is skipped and its rowid returned.
    """
    total = EvictionResult()
    skipped: list[int] = []
    with cache._transact(retry=True) as (sql, cleanup):
        for rowid, store_time, size in part:
            found = sql(
                f"SELECT filename, {SIZE_SQL} FROM Cache WHERE rowid = ? AND store_time = ?",
                (rowid, store_time),
            ).fetchall()
            if not found or found[0][1] != size:
                skipped.append(rowid)
                continue
            sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
            cleanup(found[0][0])  # runs after COMMIT: rows go first, files after
            total += EvictionResult(1, size)
    return total, skipped
