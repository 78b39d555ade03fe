"""Crash-safe value files: write to ``tmp/``, fsync, rename into place, and only then index.

diskcache alone writes value files straight to their final name without fsync; a crash
would leave an index row pointing at half a file. Here the final name appears only once
the bytes are complete (and durable, per ``durability``), so a crash leaves at worst an
orphan for ``repair``/``clean`` to sweep.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, UNKNOWN

from llamacache.engine import checksums
from llamacache.engine.safety import is_value_name, leads_outside, make_dirs_inside

BLOCK = 4 * 1024 * 1024


class PreparedFile:
    """A value file already written and renamed into place; ``store`` only indexes it."""

    __slots__ = ("filename", "size")

    def __init__(self, filename: str, size: int) -> None:
        self.filename = filename
        self.size = size


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_write(directory: str, full_path: str, chunks: Iterable[Any], durability: str) -> int:
    """Write chunks to ``<directory>/tmp``, fsync, ``os.replace`` to ``full_path``; bytes written.

    On any failure the temp file is removed and nothing appears at ``full_path``. A link
    planted where ``tmp/`` or a value folder goes raises UnsafeCacheDirError naming it.
    """
    # folders made one at a time, never through a link planted in the cache folder
    tmp_dir = make_dirs_inside(Path(directory), "tmp", "temporary folder")
    tmp = os.path.join(tmp_dir, os.urandom(12).hex() + ".tmp")
    size = 0
    try:
        with open(tmp, "xb") as out:
            for chunk in chunks:
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                out.write(data)
                size += len(data)
            if durability != "none":
                out.flush()
                os.fsync(out.fileno())
        final_dir = os.path.dirname(full_path)
        inside = os.path.relpath(final_dir, directory)
        for attempt in range(10):  # a concurrent remove may prune the xx/yy dirs under us
            try:  # ... even between creating xx and then xx/yy
                make_dirs_inside(Path(directory), inside, "value folder", 0o777)
                os.replace(tmp, full_path)
                break
            except FileNotFoundError:
                if attempt == 9 or not os.path.exists(tmp):
                    raise
        if durability == "full":
            _fsync_dir(final_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


class LlamaDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk with crash-safe file writes and pre-written (prepared) files."""

    durability = "fsync"

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, Any, Any]:
        if type(value) is PreparedFile:
            return value.size, MODE_BINARY, value.filename, None
        out: tuple[int, int, Any, Any] = super().store(value, read, key=key)
        return out

    def _write(
        self, full_path: str, iterator: Iterable[Any], mode: str, encoding: str | None = None
    ) -> int:
        return safe_write(self._directory, full_path, iterator, self.durability)

    def remove(self, file_path: str) -> None:
        """Delete a value file, unless a planted symlinked folder would lead outside the cache.

        diskcache's own remove follows a symlinked ``xx/yy`` folder and deletes the
        same-named file wherever it points; a link as the file itself is only unlinked.
        Costs one ``realpath`` of the folder.
        """
        if not is_value_name(file_path):
            return  # a damaged row's file name is never a path to delete
        folder = os.path.dirname(os.path.join(self._directory, file_path))
        if leads_outside(self._directory, folder):
            return  # the row is gone; the link stays for repair to report
        super().remove(file_path)


def blocks(src: Any, hasher: checksums.Hasher) -> Iterator[memoryview]:
    """Yield 4 MiB blocks of ``src`` (readinto when offered), feeding ``hasher`` as it goes."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            chunk = view[:n] if n else None
        else:
            data = src.read(BLOCK)
            chunk = memoryview(data) if data else None
        if not chunk:
            return
        hasher.update(chunk)
        yield chunk


class BadValueFile(Exception):
    """A value file that must not be read: a symlink, not a regular file, or the wrong size."""


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_value(path: str | os.PathLike[str], size: int | None = None) -> tuple[Any, os.stat_result]:
    """Open a value file for reading, never through a symlink; ``(binary file, fstat)``.

    O_NOFOLLOW refuses a link planted as the file; O_NONBLOCK keeps a planted FIFO from
    blocking the open; fstat on the opened descriptor then checks what was really opened.
    Raises BadValueFile (not a regular file, or not ``size`` bytes), FileNotFoundError, OSError.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadValueFile("value file is a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadValueFile("value file is not a regular file")
        if size is not None and st.st_size != size:
            raise BadValueFile(f"value file is {st.st_size} bytes, header records {size}")
        return os.fdopen(fd, "rb", buffering=0), st
    except BaseException:
        os.close(fd)
        raise


Identity = tuple[int, int, int, int, int]
_VERIFIED: dict[Identity, bytes] = {}  # file identity -> digest it was verified against
_VERIFIED_MAX = 65536
_verified_lock = threading.Lock()


def identity(st: os.stat_result) -> Identity:
    """What changes whenever a file's bytes may have: device, inode, size, mtime, ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verify_open_file(handle: Any, st: os.stat_result, algo: str, digest: bytes) -> bool:
    """True when the open file hashes to ``digest``; remembered per file identity.

    The first check of a file costs one hash pass (read from the same descriptor the
    caller keeps, so a rename meanwhile cannot swap what was checked); later checks of the
    same unchanged file cost one dict lookup. Leaves the file positioned at 0.
    """
    ident = identity(st)
    key_digest = algo.encode() + b":" + digest
    if _VERIFIED.get(ident) == key_digest:
        return True
    hashed = _hash_mapped(handle, st, algo) if st.st_size >= MAP_MIN else None
    if hashed is None:
        hashed = _hash_read(handle, st, algo)
    if hashed == digest:
        with _verified_lock:
            if len(_VERIFIED) >= _VERIFIED_MAX:
                _VERIFIED.pop(next(iter(_VERIFIED)))  # the oldest goes first
            _VERIFIED[ident] = key_digest
        return True
    return False


# Files at least this large are hashed from a populated map of the same descriptor, not
# read() into a buffer: measured on a warm 20 MiB value file, xxh3 over a MAP_POPULATE map
# took 0.7-0.9 ms against 5-9 ms for 4 MiB readinto blocks (the copy dominated). This is
# the whole cost of a fresh process's first read of a mapped dataset shard or model file.
MAP_MIN = 1024 * 1024
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _hash_mapped(handle: Any, st: os.stat_result, algo: str) -> bytes | None:
    """The digest of the file read through a map, or None (then it is read in blocks) when
    it no longer has ``st.st_size`` bytes: value files are replaced by rename, never
    truncated in place, so this only guards against someone else's truncation."""
    fd = handle.fileno()
    flags = mmap.MAP_SHARED | _POPULATE
    try:
        with mmap.mmap(fd, st.st_size, flags=flags, prot=mmap.PROT_READ) as m:
            if os.fstat(fd).st_size != st.st_size:
                return None
            with memoryview(m) as view:  # released before the map closes
                return checksums.digest(algo, view)
    except (OSError, ValueError):
        return None


def _hash_read(handle: Any, st: os.stat_result, algo: str) -> bytes | None:
    """The digest of the whole file read in blocks, or None when it is not ``st_size`` long."""
    hasher = checksums.hasher(algo)
    buf = bytearray(min(BLOCK, max(st.st_size, 1)))
    view = memoryview(buf)
    total = 0
    handle.seek(0)
    while True:
        n = handle.readinto(view)
        if not n:
            break
        hasher.update(view[:n])
        total += n
    handle.seek(0)
    return hasher.digest() if total == st.st_size else None


def forget_verified() -> None:
    """Drop every remembered verification (tests, and a caller that distrusts its own memory)."""
    with _verified_lock:
        _VERIFIED.clear()
