"""A small reserve file per cache, given back when the disk is full so deletes still work.

SQLite in WAL mode needs free space to *delete* rows (new WAL frames) and even to open
an index (it records settings). When the index itself fills the disk, ``rm``, ``clean``
and plain reads would all fail with "database or disk is full" and the cache would stay
wedged until someone freed space by hand. Keeping 1 MiB allocated and releasing it on
that error (then retrying once) lets the operation that frees room succeed; the reserve
is taken again once there is space.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

RESERVE_NAME = "reserve"
RESERVE_BYTES = 1 << 20


def ensure(directory: Path) -> bool:
    """Allocate the reserve if it is missing; False only when the disk is too full for it.

    Costs one ``stat`` when it exists; never raises. Other failures (a read-only
    directory) return True: they are not a full disk, and writes will say what they are.
    """
    path = directory / RESERVE_NAME
    if path.exists():
        return True
    tmp = directory / f".{RESERVE_NAME}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            else:  # pragma: no cover (macOS)
                os.write(fd, bytes(RESERVE_BYTES))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return exc.errno not in (errno.ENOSPC, errno.EDQUOT)


def release(directory: Path) -> bool:
    """Delete the reserve; True if there was one to give back."""
    try:
        os.unlink(directory / RESERVE_NAME)
        return True
    except OSError:
        return False
