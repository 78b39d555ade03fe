"""Advisory per-cache locks for admin operations that scan and delete.

``clean``, ``evict``, ``repair`` and ``restore`` hold ``<cache dir>/admin.lock``
with ``fcntl.flock``: the kernel drops it when the holder dies, so a lock never
goes stale after a ``kill -9``. Readers and writers of the cache never take it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llamacache.errors import LockBusyError, ReadOnlyCacheError

LOCK_NAME = "admin.lock"
_POLL_SECONDS = 0.05


@contextmanager
def admin_lock(cache_dir: Path, *, cache: str, wait: float = 0.0) -> Iterator[Path]:
    """Hold the cache's admin lock for the block; wait up to ``wait`` seconds for it.

    Raises LockBusyError (exit code 3) naming the cache when another process keeps
    it longer, and ReadOnlyCacheError when the lock file cannot be created.
    """
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = cache_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ReadOnlyCacheError(
            f"cache {cache!r}: cannot create the lock {path} ({exc.strerror})"
        ) from None
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait:g}s" if wait > 0 else ""
                    raise LockBusyError(
                        f"cache {cache!r} is locked by another clean/evict/repair{waited}",
                        wait_argument="wait",
                    ) from None
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def lock_holder(cache_dir: Path) -> int | None:
    """The pid recorded by the current holder, if the lock is held (for messages)."""
    path = cache_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
