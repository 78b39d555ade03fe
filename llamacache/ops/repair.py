"""``repair``: the writing counterpart of ``verify`` — quarantine, sweep, rebuild.

Runs a full ``verify``, then under the cache's admin lock: corrupt entries go to
``quarantine/`` with the reason (their rows deleted before their files), rows whose file
is missing are dropped (the reason kept in quarantine), orphans and temporary files are
removed, a damaged SQLite index is moved to quarantine and rebuilt from the rows that can
still be read, and diskcache's count/size figures are recomputed. Run it when no writer
is busy: unlike ``clean`` it also removes young orphans and temporaries.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from llamacache.engine import quarantine
from llamacache.engine.generation import bump_generation
from llamacache.locking import admin_lock
from llamacache.manager import CacheManager
from llamacache.ops import _index
from llamacache.ops._common import check_writable, network_warning
from llamacache.ops._report import Report
from llamacache.ops.verify import CacheVerify, Problem, verify

_COPY_COLS = (
    "key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, value"
)


@dataclass(frozen=True)
class Action:
    """One thing repair does (or would do): quarantine, drop_row, remove_file, rebuild_index."""

    action: str
    key: str | None
    path: str | None
    reason: str


@dataclass(frozen=True)
class CacheRepair:
    name: str
    actions: tuple[Action, ...]
    quarantined: int
    rows_dropped: int
    files_removed: int
    index_rebuilt: bool
    salvaged_rows: int
    count: int  # diskcache's entry count after repair
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepairReport(Report):
    schema = "repair"
    dry_run: bool
    caches: tuple[CacheRepair, ...]
    fixed: int


def _actions(c: CacheVerify) -> list[Action]:
    out: list[Action] = []
    for p in c.problems:
        if p.kind == "corrupt":
            out.append(Action("quarantine", p.key, p.path, p.detail))
        elif p.kind == "missing":
            out.append(Action("drop_row", p.key, p.path, p.detail))
        elif p.kind in ("orphan", "stale_tmp"):
            out.append(Action("remove_file", None, p.path, p.detail))
        elif p.kind == "index":
            out.append(Action("rebuild_index", None, p.path, p.detail))
    return out


def _salvage(old: sqlite3.Connection, batch_size: int = 200) -> list[tuple[object, ...]]:
    """Every row still readable: in rowid batches, and row by row through a batch that
    fails, so a damaged page loses only the rows stored on it."""
    select = f"SELECT rowid, {_COPY_COLS} FROM Cache"
    try:
        (top,) = old.execute("SELECT max(rowid) FROM Cache").fetchone()
    except sqlite3.DatabaseError:
        top = None
    top = int(top) if top is not None else 1_000_000
    rows: list[tuple[object, ...]] = []
    last = 0
    while last < top:
        try:
            batch = old.execute(
                f"{select} WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch_size)
            ).fetchall()
        except sqlite3.DatabaseError:
            for rowid in range(last + 1, last + batch_size + 1):
                try:
                    rows += [r[1:] for r in old.execute(f"{select} WHERE rowid = ?", (rowid,))]
                except sqlite3.DatabaseError:
                    continue
            last += batch_size
            continue
        if not batch:
            break
        rows += [r[1:] for r in batch]
        last = int(batch[-1][0])
    return rows


def _rebuild_index(path: Path, reason: str) -> int:
    """Move the damaged index into quarantine; make a new one from its readable rows."""
    folder = quarantine.store(path, "<index>", reason)
    for suffix in ("", "-wal", "-shm"):
        src = path / (_index.DB_NAME + suffix)
        if src.exists():
            shutil.move(str(src), folder / src.name)
    rows: list[tuple[object, ...]] = []
    try:
        old = sqlite3.connect(f"file:{folder / _index.DB_NAME}?immutable=1", uri=True)
        try:
            rows = _salvage(old)
        finally:
            old.close()
    except sqlite3.DatabaseError:
        rows = []
    import diskcache

    diskcache.Cache(str(path), eviction_policy="none", cull_limit=0).close()  # fresh schema
    con = sqlite3.connect(path / _index.DB_NAME, timeout=60, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            f"INSERT OR IGNORE INTO Cache({_COPY_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
        )
        con.execute("COMMIT")
    finally:
        con.close()
    return len(rows)


def _recount(path: Path) -> int:
    """Recompute diskcache's Settings count and size from the rows (they drift after a crash)."""
    con = sqlite3.connect(path / _index.DB_NAME, timeout=60, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        (n, total) = con.execute("SELECT count(*), total(size) FROM Cache").fetchone()
        con.execute("UPDATE Settings SET value = ? WHERE key = 'count'", (int(n),))
        con.execute("UPDATE Settings SET value = ? WHERE key = 'size'", (int(total),))
        con.execute("COMMIT")
    finally:
        con.close()
    return int(n)


def _prune_empty_folders(directory: Path) -> None:
    """Remove empty ``xx/yy`` value folders: a crash between creating one and renaming a
    value into it leaves it behind. A put racing this retries its rename (engine/files.py)."""
    for top in os.scandir(directory):
        if len(top.name) != 2 or not top.is_dir(follow_symlinks=False):
            continue
        for sub in os.scandir(top.path):
            if sub.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.rmdir(sub.path)  # fails (and is left) unless empty
        with contextlib.suppress(OSError):
            os.rmdir(top.path)


def _apply(manager: CacheManager, c: CacheVerify, actions: list[Action]) -> CacheRepair:
    s = manager.settings.cache(c.name)
    by_key = {(p.kind, p.key, p.path): p for p in c.problems}
    rebuilt = salvaged = quarantined = dropped = removed = 0
    index_problem = next((a for a in actions if a.action == "rebuild_index"), None)
    if index_problem is not None:
        salvaged = _rebuild_index(s.path, index_problem.reason)
        rebuilt = 1
    tiered = manager.cache(c.name)
    rows: list[Problem] = []
    for a in actions:
        kind = "corrupt" if a.action == "quarantine" else "missing"
        p = by_key.get((kind, a.key, a.path))
        if a.action in ("quarantine", "drop_row") and p is not None and p.rowid is not None:
            file = s.path / p.path if p.path else None
            inline = None
            if file is None and a.action == "quarantine" and not rebuilt:
                con, _ = _index.connect(s.path, cache=s.name)
                try:
                    inline = _index.value_of(con, p.rowid)
                finally:
                    con.close()
            quarantine.store(s.path, p.key, p.detail, file=file, inline=inline)
            rows.append(p)
        elif a.action == "remove_file" and a.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(s.path / a.path)
                removed += 1
    if rows and not rebuilt:
        tiered.disk.remove_rows((p.rowid or 0, p.store_time or 0.0, p.size) for p in rows)
        quarantined = sum(1 for p in rows if p.kind == "corrupt")
        dropped = sum(1 for p in rows if p.kind == "missing")
    bump_generation(s.path)  # other processes drop their memory copies
    _prune_empty_folders(s.path)
    count = _recount(s.path)
    return CacheRepair(
        c.name,
        tuple(actions),
        quarantined,
        dropped,
        removed,
        bool(rebuilt),
        salvaged,
        count,
        c.warnings,
    )


def repair(
    manager: CacheManager, cache: str | None = None, *, dry_run: bool = False, wait: float = 0.0
) -> RepairReport:
    """Verify, then fix what verify found (``dry_run``: only say what would be done).

    Reads every entry once (a full verify). Raises LockBusyError (exit 3) when another
    clean/evict/repair holds a cache's lock past ``wait`` seconds.
    """
    found = verify(manager, cache)
    results: list[CacheRepair] = []
    for c in found.caches:
        actions = _actions(c)
        if dry_run or not c.exists:
            warnings = tuple(w for w in (network_warning(manager.settings.cache(c.name)),) if w)
            results.append(
                CacheRepair(c.name, tuple(actions), 0, 0, 0, False, 0, c.entries, warnings)
            )
            continue
        s = manager.settings.cache(c.name)
        check_writable(s)
        with admin_lock(s.path, cache=c.name, wait=wait):
            done = _apply(manager, c, actions)
            if done.index_rebuilt:  # entries of the rebuilt index get their own pass
                (again,) = verify(manager, c.name).caches
                more = _apply(manager, again, _actions(again))
                done = CacheRepair(
                    c.name,
                    done.actions + more.actions,
                    more.quarantined,
                    more.rows_dropped,
                    done.files_removed + more.files_removed,
                    True,
                    done.salvaged_rows,
                    more.count,
                    c.warnings,
                )
            results.append(done)
    return RepairReport(
        dry_run=dry_run,
        caches=tuple(results),
        fixed=0 if dry_run else sum(len(r.actions) for r in results),
    )
