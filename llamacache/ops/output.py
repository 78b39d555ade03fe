"""Writing a user-named output file safely (``get --out``, ``config init``, ``schedule``).

The bytes go to a temp file made by ``tempfile.mkstemp`` beside the target (random name,
O_CREAT|O_EXCL|O_NOFOLLOW, so nobody can pre-plant it or point it elsewhere), are
fsynced and renamed over the target: a reader never sees half a file, and an interrupted
write leaves the old target as it was. A target that exists and is a character device
or a FIFO (``--out /dev/null``, a named pipe) is written in place, never replaced; other
non-regular targets (a directory, block device or socket) are refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from llamacache.errors import UsageError

PRIVATE = 0o600  # values from a cache: readable by their owner only


def _umask_mode() -> int:
    """0666 less the process umask (what ``open(path, "w")`` would have given)."""
    old = os.umask(0o077)
    os.umask(old)
    return 0o666 & ~old


def write_file(target: Path, write: Callable[[BinaryIO], Any], mode: int | None = PRIVATE) -> Any:
    """Write ``target`` through ``write(handle)``; returns what ``write`` returned.

    ``mode`` is the new file's permission bits (None: 0666 less the umask). Raises
    UsageError for a target that is a folder or a kind of file that must not be replaced.
    On any failure (including an exception from ``write``) the target is left untouched.
    """
    try:
        st = os.stat(target)  # follows a symlink: its target's kind decides
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            with open(target, "wb", buffering=0) as handle:  # no truncation or rename here
                return write(handle)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UsageError(f"{target}: is {kind}; expected a file name")
    parent = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            out = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode() if mode is None else mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out


def write_text(target: Path, text: str, mode: int | None = None) -> None:
    """``write_file`` for a text file (UTF-8); by default umask-respecting permissions."""
    data = text.encode("utf-8")
    write_file(target, lambda h: h.write(data), mode)
