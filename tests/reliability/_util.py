"""Small helpers shared by the reliability tests (real caches on real directories)."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import diskcache

from llamacache.config.settings import CacheSettings
from llamacache.engine import TieredCache

Figure = Callable[[str, object], None]  # the ``figure`` fixture: figure("lost_writes", 0)

# Files and folders in a cache directory that are ours, not diskcache's (check() calls them
# unknown): the admin lock and the temp folder crash-safe writes go through.
OURS = ("admin.lock", "reserve", "changes")


def cache_settings(root: Path, name: str = "c", **kw: Any) -> CacheSettings:
    base = CacheSettings(
        name=name, path=root / name, disk_size=10**9, memory_size=0, compression="none"
    )
    return replace(base, **kw)


def open_cache(root: Path, name: str = "c", **kw: Any) -> TieredCache:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return TieredCache(cache_settings(root, name, **kw))


def make_value(key: str, seq: int, size: int) -> bytes:
    """``key|seq|sha256(body)|body``: a reader can tell whose value it holds and if it is intact."""
    body = hashlib.sha256(f"{key}:{seq}".encode()).digest() * (size // 32 + 1)
    body = body[:size]
    return f"{key}|{seq}|".encode() + hashlib.sha256(body).hexdigest().encode() + b"|" + body


def check_value(key: str, value: Any) -> str | None:
    """None when ``value`` is an intact value made for ``key``, else what is wrong."""
    if not isinstance(value, bytes):
        return f"not bytes: {type(value).__name__}"
    try:
        k, _seq, digest, body = value.split(b"|", 3)
    except ValueError:
        return "unparsable"
    if k.decode(errors="replace") != key:
        return f"value of {k!r} under {key!r}"
    if hashlib.sha256(body).hexdigest().encode() != digest:
        return "digest mismatch"
    return None


def diskcache_warnings(directory: Path) -> list[str]:
    """diskcache's own ``check()``, minus the files it does not know are ours."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = diskcache.Cache(str(directory), eviction_policy="none")
        try:
            found = cache.check()
        finally:
            cache.close()
    messages = [str(w.message) for w in (*caught, *found)]
    out = []
    for m in dict.fromkeys(messages):
        if any(m.endswith(os.sep + name) for name in OURS):
            continue
        if m.startswith("empty directory:") and m.endswith(os.sep + "tmp"):
            continue
        out.append(m)
    return out


def file_rows(directory: Path) -> list[tuple[str, int]]:
    """(filename, size) of every file-backed row, read straight from the index."""
    import sqlite3

    con = sqlite3.connect(f"file:{directory / 'cache.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT filename, size FROM Cache WHERE filename IS NOT NULL")
        return [(str(f), int(s)) for f, s in rows]
    finally:
        con.close()


def value_files(directory: Path) -> list[Path]:
    """Every value file on disk (``*.val``); tolerates folders vanishing during the walk."""
    return [
        Path(dirpath) / name
        for dirpath, _dirs, names in os.walk(directory)
        for name in names
        if name.endswith(".val")
    ]


def llamacache_cmd() -> list[str]:
    """The installed console script next to this interpreter (what a user runs)."""
    local = Path(sys.executable).with_name("llamacache")
    return [str(local)] if local.exists() else [sys.executable, "-m", "llamacache"]
