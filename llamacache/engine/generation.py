"""A cache's change signal: every process on the machine can tell, cheaply, what changed.

Each cache folder holds ``changes``, a 4 KiB file every process maps into memory. A
writer (put, remove, evict, clear, restore...) takes ``flock`` on it, advances a
counter and records a 64-bit hash of the key it changed in a ring of the last
``RING`` changes (hash 0 means "anything may have changed"). A reader compares the
counter with the one it last saw -- one 8-byte read, no lock, no system call -- and,
when it moved, drops exactly the keys in the ring, or its whole memory front when it
fell more than a ring behind. SQLite's ``data_version`` would say *that* something
changed but not *what*, and costs a query.

The file is created by the cache (O_NOFOLLOW, mode 0600, in the cache's private
folder); a file that is not a regular file of the right size is replaced. Its bytes
are hints, never data: a damaged ring only makes a reader drop more than needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Hashable
from pathlib import Path

import xxhash

FILENAME = "changes"
MAGIC = b"LLCGEN01"
RING = 500  # key hashes kept; a reader further behind drops its whole memory front
SIZE = 4096  # 8 magic + 8 counter + RING x 8 (+ padding)
ALL = 0  # the hash meaning "anything may have changed" (clear, evict, restore)
_U64 = struct.Struct("<Q")
_COUNTER = 8
_RING_AT = 16


def key_hash(key: Hashable) -> int:
    """A 64-bit hash of ``key`` that is the same in every process (never 0)."""
    from llamacache.engine.netformat import encode_key

    return xxhash.xxh3_64_intdigest(encode_key(key).encode("utf-8", "surrogatepass")) or 1


def _open(path: Path, writable: bool) -> int:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    if not writable:
        return os.open(path, os.O_RDONLY | flags)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_size != SIZE:
            with _locked(fd):
                if os.fstat(fd).st_size != SIZE:  # new (or damaged): a fresh, valid header
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, SIZE)
                    os.pwrite(fd, MAGIC + _U64.pack(1), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _locked(fd: int):  # type: ignore[no-untyped-def]
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class Generation:
    """One process's view of one cache's change signal (thread-safe).

    ``bump(hashes)`` records changes; ``changed()`` tells a reader what changed since
    it last asked: None (nothing), a set of key hashes, or ``{ALL}``.
    Unusable folder (read-only, foreign file): ``usable`` is False and a reader cannot
    learn about changes, so the cache revalidates by dropping its memory front.
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / FILENAME
        self._lock = threading.Lock()
        self._fd = -1
        self._map: mmap.mmap | None = None
        self.writable = False
        try:
            self._fd = _open(self.path, True)
            self.writable = True
        except OSError:
            with contextlib.suppress(OSError):
                self._fd = _open(self.path, False)
        if self._fd >= 0:
            try:
                if os.fstat(self._fd).st_size == SIZE:
                    prot = mmap.PROT_READ | (mmap.PROT_WRITE if self.writable else 0)
                    self._map = mmap.mmap(self._fd, SIZE, mmap.MAP_SHARED, prot)
            except (OSError, ValueError):
                self._map = None
            if self._map is None or self._map[:8] != MAGIC:
                self.close()
        self.seen = self.counter()

    @property
    def usable(self) -> bool:
        return self._map is not None

    def counter(self) -> int:
        """The current counter (0 when the signal is unusable)."""
        m = self._map
        return _U64.unpack_from(m, _COUNTER)[0] if m is not None else 0

    def bump(self, *hashes: int) -> None:
        """Record that these keys (hash ``ALL``: everything) changed; a no-op if unusable."""
        m = self._map
        if m is None or not self.writable:
            return
        with self._lock, _locked(self._fd):
            c = start = _U64.unpack_from(m, _COUNTER)[0]
            for h in hashes or (ALL,):
                c += 1
                _U64.pack_into(m, _RING_AT + (c % RING) * 8, h)
            _U64.pack_into(m, _COUNTER, c)
            if start == self.seen:  # nobody else wrote since we last looked: our own change
                self.seen = c

    def changed(self) -> set[int] | None:
        """Key hashes changed since the last call (``{ALL}``: assume everything), or None."""
        m = self._map
        if m is None:
            return None
        with self._lock:
            c = _U64.unpack_from(m, _COUNTER)[0]
            last = self.seen
            if c == last:
                return None
            self.seen = c
            if c < last or c - last >= RING - 1:  # lapped (or the file was recreated)
                return {ALL}
            out = {
                _U64.unpack_from(m, _RING_AT + (i % RING) * 8)[0] for i in range(last + 1, c + 1)
            }
            if _U64.unpack_from(m, _COUNTER)[0] - last >= RING - 1:  # lapped while reading
                return {ALL}
            return out

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError, ValueError):
                self._map.close()
            self._map = None
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def bump_generation(directory: str | Path, *hashes: int) -> None:
    """Tell every process using the cache in ``directory`` that it changed.

    Admin ops (evict, clean, repair, restore) call this after deleting or replacing
    entries; without ``hashes`` readers drop their whole memory front. Never raises
    for a folder where the signal cannot be written (read-only, missing).
    """
    if not Path(directory).is_dir():
        return
    gen = Generation(directory)
    try:
        gen.bump(*hashes)
    finally:
        gen.close()
