"""Checksum algorithms as a table: one-byte ids (part of the on-disk format) and hashers.

xxh3-128 is the default: at ~15 GB/s it is faster than a warm read, so verifying is
bound by the disk, not the hash. blake3 and sha256 are there for users who want a
cryptographic digest (blake3 is ~4x faster than sha256 here).
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from stat import S_ISREG
from typing import Protocol, Union

import xxhash

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)


class Hasher(Protocol):
    """The streaming interface every algorithm's hasher object offers."""

    def update(self, data: BytesLike, /) -> object: ...

    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class Algorithm:
    """One checksum algorithm: name, header id, digest length, hasher factory."""

    name: str
    id: int
    digest_size: int
    new: Callable[[], Hasher]
    digest: Callable[[BytesLike], bytes]


def _xxh3(data: BytesLike) -> bytes:
    out: bytes = xxhash.xxh3_128_digest(data)
    return out


# blake3 and hashlib (OpenSSL) load on first use: xxh3 is the default, and every command
# that only reads an index (inspect, ls) would pay ~3 ms to import them.
def _blake3_new() -> Hasher:
    import blake3

    h: Hasher = blake3.blake3()
    return h


def _blake3(data: BytesLike) -> bytes:
    import blake3

    out: bytes = blake3.blake3(data).digest()
    return out


def _sha256_new() -> Hasher:
    import hashlib

    return hashlib.sha256()


def _sha256(data: BytesLike) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("xxh3", 1, 16, xxhash.xxh3_128, _xxh3),
    Algorithm("blake3", 2, 32, _blake3_new, _blake3),
    Algorithm("sha256", 3, 32, _sha256_new, _sha256),
)
BY_NAME: dict[str, Algorithm] = {a.name: a for a in ALGORITHMS}
BY_ID: dict[int, Algorithm] = {a.id: a for a in ALGORITHMS}
# id -> digest function, for the decode fast path (one dict lookup, no attribute access)
DIGEST_BY_ID: dict[int, Callable[[BytesLike], bytes]] = {a.id: a.digest for a in ALGORITHMS}


def digest(algo: str, data: BytesLike) -> bytes:
    """The digest of ``data`` with the named algorithm (KeyError for an unknown name)."""
    return BY_NAME[algo].digest(data)


def hasher(algo: str) -> Hasher:
    """A fresh streaming hasher (``update()`` / ``digest()``) for the named algorithm."""
    return BY_NAME[algo].new()


# -- whole files, across cores -----------------------------------------------------------------

MAP_MIN = 1024 * 1024  # files at least this large are hashed from a read-only mapping
MAP_STEP = 64 * 1024 * 1024  # a mapped file is hashed in slices this big (deadline, progress)


class FileChanged(OSError):
    """The file opened is not the regular file of the size the caller expected: it was
    replaced (or planted) between the caller's check and the open."""


def digest_file(
    algo: str,
    path: str | os.PathLike[str],
    *,
    size: int | None = None,
    deadline: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> bytes | None:
    """The digest of a whole file; None when ``deadline`` (``time.monotonic()``) passed
    before the last slice.

    Opened without following a symbolic link and without blocking (a FIFO never hangs
    the reader); FileChanged when it is not a regular file or not ``size`` bytes. Files of
    MAP_MIN or more are hashed straight from a read-only mapping (no copy into a buffer),
    in MAP_STEP slices, calling ``progress(bytes)`` after each; value files are replaced
    by rename and removed by unlink, never truncated in place, so a mapping stays valid.
    Raises OSError (FileNotFoundError for a vanished file) when it cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            raise FileChanged(errno.EINVAL, "not a regular file", str(path))
        if size is not None and st.st_size != size:
            raise FileChanged(errno.EINVAL, f"{st.st_size} bytes, expected {size}", str(path))
        h = hasher(algo)
        total = st.st_size
        if total < MAP_MIN:
            while chunk := os.read(fd, MAP_MIN):
                h.update(chunk)
            return h.digest()
        import mmap

        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
            if hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(mm)
            try:
                for start in range(0, total, MAP_STEP):
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    piece = view[start : start + MAP_STEP]
                    h.update(piece)  # xxhash >= 4.1, blake3, hashlib: the GIL is released
                    piece.release()
                    if progress is not None:
                        progress(min(MAP_STEP, total - start))
            finally:
                view.release()
        return h.digest()
    finally:
        os.close(fd)


class _Closing(Exception):
    """Raised inside a worker when its pool closes mid-file."""


class DigestJob:
    """One file queued on a DigestPool; ``result()`` waits for it."""

    __slots__ = ("algo", "path", "size", "hashed", "_done", "_value", "_error")

    def __init__(self, algo: str, path: str | os.PathLike[str], size: int | None) -> None:
        import threading

        self.algo, self.path, self.size = algo, path, size
        self.hashed = 0  # bytes hashed so far (written by one worker thread, read for progress)
        self._done = threading.Event()
        self._value: bytes | None = None
        self._error: OSError | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True once the file is hashed (or failed)."""
        return self._done.wait(timeout)

    def result(self) -> bytes | None:
        """The digest, None when stopped by the pool's deadline; raises the open's OSError."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class DigestPool:
    """Whole files hashed by ``jobs`` threads (default: the CPUs this process may use),
    ahead of the caller who collects results in any order it likes.

    Threads, not processes: the hashers release the GIL while hashing a large buffer
    (xxhash from 4.1), so N threads hash N files at once with no fork, pickling or
    start-up cost. A context manager; closing waits for the files in hand to finish.
    """

    def __init__(self, jobs: int | None = None, deadline: float | None = None) -> None:
        import queue

        if jobs is None:
            get = getattr(os, "sched_getaffinity", None)
            jobs = len(get(0)) if get is not None else (os.cpu_count() or 1)
        self.jobs = max(1, jobs)
        self.deadline = deadline
        self._queue: queue.SimpleQueue[DigestJob | None] = queue.SimpleQueue()
        self._threads: list[object] = []
        self._closing = False

    def submit(self, algo: str, path: str | os.PathLike[str], size: int | None = None) -> DigestJob:
        """Queue one file (``size``: the bytes expected, FileChanged otherwise)."""
        job = DigestJob(algo, path, size)
        self._queue.put(job)
        if len(self._threads) < self.jobs:
            import threading

            t = threading.Thread(target=self._work, name="llamacache-digest", daemon=True)
            t.start()
            self._threads.append(t)
        return job

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if not self._closing:
                    job._value = digest_file(
                        job.algo,
                        job.path,
                        size=job.size,
                        deadline=self.deadline,
                        progress=functools.partial(self._count, job),
                    )
            except _Closing:
                pass  # abandoned: nobody waits for it
            except OSError as exc:
                job._error = exc
            except BaseException as exc:  # never leave a waiter hanging
                job._error = OSError(errno.EIO, f"hashing failed: {exc!r}", str(job.path))
            finally:
                job._done.set()

    def _count(self, job: DigestJob, n: int) -> None:
        """After each slice of a mapped file: progress, and a prompt stop on close."""
        job.hashed += n
        if self._closing:
            raise _Closing

    def close(self) -> None:
        """Stop the workers: files not yet hashed are skipped, a file being hashed stops at
        its next slice (Ctrl-C or a --max-time stop waits for no large file); waits."""
        self._closing = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()  # type: ignore[attr-defined]
        self._threads.clear()

    def __enter__(self) -> DigestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def digest_files_parallel(
    algo: str, paths: list[str], sizes: list[int] | None = None, jobs: int | None = None
) -> list[bytes | str]:
    """Digests of whole files, in order, hashed on ``jobs`` threads (a DigestPool); a file
    that cannot be read gives its error text instead. ``sizes`` are accepted for callers
    that know them: a file of another size gives an error text. One job hashes in this
    thread."""
    out: list[bytes | str] = []
    if jobs == 1:
        for i, path in enumerate(paths):
            try:
                d = digest_file(algo, path, size=None if sizes is None else sizes[i])
                out.append(d or b"")
            except OSError as exc:
                out.append(f"{path}: {exc.strerror or exc}")
        return out
    with DigestPool(jobs) as pool:
        jobs_ = [
            pool.submit(algo, p, None if sizes is None else sizes[i]) for i, p in enumerate(paths)
        ]
        for path, job in zip(paths, jobs_, strict=True):
            try:
                out.append(job.result() or b"")
            except OSError as exc:
                out.append(f"{path}: {exc.strerror or exc}")
    return out
