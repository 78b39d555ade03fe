"""Files in a cache directory that its index does not know: orphans and stale temporaries.

Shared by ``verify`` (reports them), ``repair`` (removes them) and ``clean`` (removes the
old ones). Known non-value files are listed here; the value tree is diskcache's
``xx/yy/<hex>.val`` layout. Only names llamacache creates (``safety.is_own_name``) can be
orphans: a file someone else left in the directory is never reported for deletion.
``snapshots/`` (a real folder, never a link) holds ``ModelCache.model_path`` views: symlinks
into the value tree that a running ``from_pretrained()`` may be reading through, so it is
ours and never walked as values; ``clean`` only prunes its links whose entry is gone.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from llamacache.engine import generation, quarantine, reserve, unshared
from llamacache.engine.safety import CACHEDIR_TAG, is_own_name
from llamacache.locking import LOCK_NAME
from llamacache.ml.model import SNAPSHOTS_DIR
from llamacache.ops import _index

# files the cache directory holds besides value files (at its top level)
KNOWN_TOP = frozenset(
    {
        _index.DB_NAME,
        _index.DB_NAME + "-wal",
        _index.DB_NAME + "-shm",
        _index.DB_NAME + "-journal",
        LOCK_NAME,
        CACHEDIR_TAG,
        reserve.RESERVE_NAME,  # the space kept so deletes work on a full disk
        generation.FILENAME,  # the change signal other processes read
        unshared.DIR_NAME,  # writes waiting to be shared
    }
)
TMP_DIR = "tmp"
STALE_TMP_SECONDS = 3600.0


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


FileList = list[tuple[str, int, float]]  # (relative path, size, mtime)


def _walk_files(directory: Path, skip: Path | None = None) -> tuple[FileList, FileList]:
    """(value-tree files, tmp files) as (relative path, size, mtime); skips known files."""
    values: FileList = []
    tmps: FileList = []
    base = str(directory)
    skip_top = None  # a temp_dir configured inside the cache (the system cache's) is not ours
    if skip is not None and skip.is_relative_to(directory) and skip != directory:
        skip_top = skip.relative_to(directory).parts[0]
    for top in os.scandir(base):
        if top.name in KNOWN_TOP or top.name in (quarantine.DIR_NAME, skip_top):
            continue
        if top.name == SNAPSHOTS_DIR and top.is_dir(follow_symlinks=False):
            continue  # model_path views
        if top.is_dir(follow_symlinks=False):
            bucket = tmps if top.name == TMP_DIR else values
            for dirpath, _dirs, files in os.walk(top.path):
                for name in files:
                    full = os.path.join(dirpath, name)
                    try:
                        stt = os.lstat(full)
                    except FileNotFoundError:
                        continue
                    rel = os.path.relpath(full, base).replace(os.sep, "/")
                    if is_own_name(rel):  # someone else's file is never an orphan to delete
                        bucket.append((rel, stt.st_size, stt.st_mtime))
        elif top.name == SNAPSHOTS_DIR:  # our name, but a link or file: planted, a stray
            stt = top.stat(follow_symlinks=False)
            values.append((top.name, stt.st_size, stt.st_mtime))
    return values, tmps


def find_strays(
    con: sqlite3.Connection,
    directory: Path,
    now: float,
    *,
    tmp_age: float = 0.0,
    skip: Path | None = None,
) -> tuple[list[Problem], list[Problem]]:
    """(orphans, temporaries older than ``tmp_age``): files the index does not know.

    Candidates are re-checked against the index, so a file renamed into place just
    before its row committed is not called an orphan.
    """
    known = {r[0] for r in con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
    values, tmps = _walk_files(directory, skip)
    cands = [v for v in values if v[0] not in known]
    if cands:
        marks = ",".join("?" * len(cands))
        late = {
            r[0]
            for r in con.execute(
                f"SELECT filename FROM Cache WHERE filename IN ({marks})", [c[0] for c in cands]
            )
        }
        cands = [c for c in cands if c[0] not in late]
    orphans = [
        Problem("orphan", None, rel, f"unknown file ({size} bytes) not in the index", size=size)
        for rel, size, _m in cands
    ]
    stale = [
        Problem(
            "stale_tmp", None, rel, f"half-written temporary file, {now - m:.0f}s old", size=size
        )
        for rel, size, m in tmps
        if now - m >= tmp_age
    ]
    return orphans, stale


def dangling_snapshot_links(directory: Path) -> list[tuple[Path, int]]:
    """Links under ``snapshots/`` whose cached file is gone (evicted): what ``clean`` prunes.

    Walks without following links (a linked folder is not entered) and only ever
    unlinks a link itself, so nothing a link points at is touched.
    """
    root = directory / SNAPSHOTS_DIR
    if not root.is_dir() or root.is_symlink():
        return []
    out: list[tuple[Path, int]] = []
    for dirpath, dirs, files in os.walk(root):
        for name in files + dirs:
            p = Path(dirpath) / name
            if p.is_symlink() and not p.exists():
                out.append((p, 0))
    return out
