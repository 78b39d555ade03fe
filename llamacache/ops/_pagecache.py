"""Page-cache residency (mincore through ctypes on an mmap) and warming (like ``vmtouch -t``).

Python's ``mmap`` exposes no address, so the mapping is made with libc's ``mmap`` directly;
where libc or ``mincore`` is missing (non-Linux), residency is reported as unavailable and
warming still reads the files through.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

BLOCK = 4 * 1024 * 1024
_PROT_READ, _MAP_SHARED = 1, 1
_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()
UNAVAILABLE_REASON = None if _LIBC is not None else "mincore is not available on this platform"


def resident_bytes(path: Path) -> int | None:
    """Bytes of ``path`` now in the page cache, or None when it cannot be measured."""
    if _LIBC is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        addr = _LIBC.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            return None
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            pages = (size + page - 1) // page
            vec = (ctypes.c_ubyte * pages)()
            if _LIBC.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                return None
            resident = sum(1 for v in bytes(vec) if v & 1)
        finally:
            _LIBC.munmap(ctypes.c_void_p(addr), size)
        return min(size, resident * page)
    finally:
        os.close(fd)


def residency(paths: Iterable[Path]) -> int | None:
    """Total resident bytes over ``paths`` (None when unmeasurable)."""
    total = 0
    for p in paths:
        n = resident_bytes(p)
        if n is None:
            return None
        total += n
    return total


def touch(paths: Iterable[Path]) -> int:
    """Read every page of every file (sequential 4 MiB reads); returns bytes read."""
    buf = bytearray(BLOCK)
    done = 0
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
            while n := f.readinto(buf):
                done += n
    return done


def drop(path: Path) -> None:
    """Ask the kernel to drop ``path`` from the page cache (benchmarks: a cold start)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())  # dirty pages cannot be dropped
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
