"""OS and SQLite failures mapped to llamacache's error family (the engine meets both).

``OSError(ENOSPC)`` and SQLite's "database or disk is full" are the same event seen
through two layers; both become one DiskFullError naming the cache.
"""

from __future__ import annotations

import errno
import sqlite3

from llamacache.errors import (
    CacheIOError,
    CorruptEntryError,
    DiskFullError,
    LlamacacheError,
    ReadOnlyCacheError,
)

# What a damaged index raises: SQLite's errors, and UnicodeDecodeError when the message
# SQLite returns (e.g. "malformed database schema (...)") quotes bytes that are not UTF-8.
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, UnicodeDecodeError)

_DISK_FULL_MESSAGES = ("database or disk is full", "disk i/o error: no space")


def translate_os_error(exc: BaseException, cache: str, path: object) -> LlamacacheError | None:
    """Map an OS or SQLite failure to our error family, or None if it is not one we name.

    ``OSError(ENOSPC)`` and SQLite's "database or disk is full" are the same event
    seen through two layers; both become one :class:`DiskFullError` naming the cache.
    """
    if isinstance(exc, LlamacacheError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFullError(f"cache {cache!r}: disk full at {path} ({exc.strerror})")
        if exc.errno == errno.EROFS:
            return ReadOnlyCacheError(f"cache {cache!r}: {path} is on a read-only filesystem")
        if exc.errno in (errno.EACCES, errno.EPERM):
            where = exc.filename or path
            return ReadOnlyCacheError(f"cache {cache!r}: permission denied on {where}")
        if exc.errno == errno.EIO:
            return CacheIOError(f"cache {cache!r}: I/O error at {exc.filename or path}")
        return CacheIOError(f"cache {cache!r}: {exc.strerror or exc} at {exc.filename or path}")
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if any(m in text for m in _DISK_FULL_MESSAGES):
            return DiskFullError(f"cache {cache!r}: disk full at {path} (database or disk is full)")
        if "readonly" in text or "read-only" in text:
            return ReadOnlyCacheError(f"cache {cache!r}: {path} is read-only ({exc})")
        if "unable to open" in text:
            return ReadOnlyCacheError(f"cache {cache!r}: cannot open the index in {path} ({exc})")
        return CacheIOError(f"cache {cache!r}: SQLite error at {path}: {exc}")
    if isinstance(exc, sqlite3.DatabaseError):
        return CorruptEntryError(cache, "<index>", f"SQLite index is damaged: {exc}")
    return None
