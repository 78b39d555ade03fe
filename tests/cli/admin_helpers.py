"""Real caches on disk for the admin command tests (built with the engine, then closed)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from llamacache.config import resolve
from llamacache.manager import CacheManager


def manager(root: Path, **overrides: Any) -> CacheManager:
    """A manager over ``root`` with no config file and no environment."""
    over: dict[str, object] = {"cache.disk.path": str(root), **overrides}
    return CacheManager(resolve(read_files=False, env={}, overrides=over))


def fill(
    root: Path,
    entries: dict[str, bytes],
    files: dict[str, bytes] | None = None,
    cache: str = "default",
    **kw: Any,
) -> Path:
    """Store inline values and raw files in one cache; returns its directory."""
    m = manager(root, **{"cache.compression": "none", **kw})
    c = m.cache(cache)
    for key, value in entries.items():
        c.put(key, value)
    for key, data in (files or {}).items():
        src = root.parent / f"src-{abs(hash(key))}.bin"
        src.write_bytes(data)
        c.put_file(key, src)
        src.unlink()
    path = c.disk.directory
    m.close()
    return path


def value_path(cache_dir: Path, key: str) -> Path:
    con = sqlite3.connect(cache_dir / "cache.db")
    try:
        (name,) = con.execute("SELECT filename FROM Cache WHERE key = ?", (key,)).fetchone()
    finally:
        con.close()
    return cache_dir / name


def set_inline(cache_dir: Path, key: str, value: bytes) -> None:
    """Overwrite an inline payload in place (a bit flip the index cannot see)."""
    con = sqlite3.connect(cache_dir / "cache.db")
    try:
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (value, key))
        con.commit()
    finally:
        con.close()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with size and mtime (SQLite's -shm lock file excluded:
    any reader of a WAL index marks its read slot there; it holds no data)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            if name.endswith("-shm"):
                continue
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return out
