"""``repair``: the writing counterpart of ``verify`` — quarantine, sweep, rebuild.

Under the cache's admin lock, runs a full ``verify``, then: corrupt entries go to
``quarantine/`` with the reason (their rows deleted before their files), rows whose file
is missing are dropped (the reason kept in quarantine), orphans and temporaries older
than ``temp_grace`` and not held open are removed, a damaged SQLite index is copied to
quarantine and rebuilt by the engine beside the old one from the rows that can still be
read (renamed into place only when complete), and the count/size figures are recomputed.
Orphans are never removed when the index could not be read whole, nor in the run that
rebuilt it. Safe beside live writers; a kill -9 at any instant loses no intact entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llamacache.config.settings import CacheSettings
from llamacache.engine import index, quarantine
from llamacache.engine.generation import bump_generation
from llamacache.engine.locking import admin_lock
from llamacache.manager import CacheManager
from llamacache.ops._common import check_writable, network_warning, no_index_warning, targets
from llamacache.ops._report import Report, ReportWarning
from llamacache.ops.verify import CacheVerify, Problem, verify_one


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
    warnings: tuple[ReportWarning, ...] = ()


@dataclass(frozen=True)
class RepairReport(Report):
    schema = "repair"
    schema_version = 2  # 2: warnings are objects {kind, cache, detail}
    dry_run: bool
    caches: tuple[CacheRepair, ...]
    fixed: int


def _actions(c: CacheVerify, removable: set[str] | None = None) -> list[Action]:
    """What to do about each problem; files only when in ``removable`` (None: all)."""
    out: list[Action] = []
    for p in c.problems:
        if p.kind == "corrupt":
            out.append(Action("quarantine", p.key, p.path, p.detail))
        elif p.kind == "missing":
            out.append(Action("drop_row", p.key, p.path, p.detail))
        elif p.kind in ("orphan", "stale_tmp"):
            if removable is None or p.path in removable:
                out.append(Action("remove_file", None, p.path, p.detail))
        elif p.kind == "index":
            out.append(Action("rebuild_index", None, p.path, p.detail))
        elif p.kind in ("incomplete", "unreferenced"):  # model revisions and blobs
            out.append(Action("remove_entry", p.key, p.path, p.detail))
    return out


def _removable(s: CacheSettings, c: CacheVerify, now: float) -> set[str]:
    """Strays repair may delete: older than ``temp_grace``, not held open, and orphans only
    when the index was read whole (a damaged one cannot say what is an orphan)."""
    try:
        with index.Snapshot(s.path, cache=s.name) as snap:
            orphans, stale = snap.strays(now, grace=s.temp_grace, skip=s.temp_dir)
    except index.READ_ERRORS:
        return set()
    out = {p.path for p in stale if p.path}
    if c.index_ok:
        out |= {p.path for p in orphans if p.path}
    return out


def _apply(manager: CacheManager, c: CacheVerify, actions: list[Action]) -> CacheRepair:
    s = manager.settings.cache(c.name)
    by_key = {(p.kind, p.key, p.path): p for p in c.problems}
    rebuilt = salvaged = quarantined = dropped = removed = 0
    index_problem = next((a for a in actions if a.action == "rebuild_index"), None)
    if index_problem is not None:
        salvaged = index.rebuild(s.path, index_problem.reason)
        rebuilt = 1
        actions = [a for a in actions if a.action == "rebuild_index"]  # rows: the next pass
    tiered = manager.cache(c.name)
    rows: list[Problem] = []
    entries: list[Problem] = []  # whole entries that are no longer of use (not damaged)
    for a in actions:
        kind = "corrupt" if a.action == "quarantine" else "missing"
        p = by_key.get((kind, a.key, a.path))
        if a.action == "remove_entry":
            p = by_key.get(("incomplete", a.key, a.path)) or by_key.get(
                ("unreferenced", a.key, a.path)
            )
            if p is not None and p.rowid is not None:
                entries.append(p)
            continue
        if a.action in ("quarantine", "drop_row") and p is not None and p.rowid is not None:
            file = s.path / p.path if p.path else None
            inline = None
            if file is None and a.action == "quarantine":
                with index.Snapshot(s.path, cache=s.name) as snap:
                    inline = snap.value_of(p.rowid)
            quarantine.store(s.path, p.key, p.detail, file=file, inline=inline)
            rows.append(p)
        elif a.action == "remove_file" and a.path:
            removed += index.remove_files([(s.path / a.path, 0)], s.path)
    if rows:
        tiered.disk.remove_rows((p.rowid or 0, p.store_time or 0.0, p.size) for p in rows)
        quarantined = sum(1 for p in rows if p.kind == "corrupt")
        dropped = sum(1 for p in rows if p.kind == "missing")
    if entries and not rebuilt:  # skipped when changed since verify (store time, size)
        done, _ = tiered.disk.remove_rows(
            (p.rowid or 0, p.store_time or 0.0, p.size) for p in entries
        )
        dropped += done.count
    bump_generation(s.path)  # other processes drop their memory copies
    index.prune_empty_folders(s.path)
    count = index.recount(s.path)
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


def _repair_one(manager: CacheManager, s: CacheSettings) -> CacheRepair:
    """Under the admin lock: finish a rebuild a kill interrupted, verify, fix, and verify
    the rebuilt index's rows in a second pass."""
    index.finish_rebuild(s.path)
    c = verify_one(s)
    now = time.time()
    done = _apply(manager, c, _actions(c, _removable(s, c, now)))
    if not done.index_rebuilt:
        return done
    again = verify_one(s)
    # orphans of a just-rebuilt index are reported, never removed in the same run
    keep = {p.path for p in again.problems if p.kind == "stale_tmp" and p.path}
    more = _apply(manager, again, _actions(again, keep & _removable(s, again, time.time())))
    return CacheRepair(
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


def repair(
    manager: CacheManager, cache: str | None = None, *, dry_run: bool = False, wait: float = 0.0
) -> RepairReport:
    """Verify, then fix what verify found (``dry_run``: only say what would be done).

    Reads every entry once (a full verify). Raises LockBusyError (exit 3) when another
    clean/evict/repair holds a cache's lock past ``wait`` seconds.
    """
    results: list[CacheRepair] = []
    for s in targets(manager, cache):
        if dry_run or not index.exists(s.path):
            c = verify_one(s)
            now = time.time()
            actions = _actions(c, _removable(s, c, now) if c.exists else set())
            warnings = tuple(w for w in (network_warning(s), no_index_warning(s)) if w)
            results.append(
                CacheRepair(c.name, tuple(actions), 0, 0, 0, False, 0, c.entries, warnings)
            )
            continue
        check_writable(s)
        with admin_lock(s.path, cache=s.name, wait=wait):
            results.append(_repair_one(manager, s))
    return RepairReport(
        dry_run=dry_run,
        caches=tuple(results),
        fixed=0 if dry_run else sum(len(r.actions) for r in results),
    )
