"""Checksum algorithms as a table: one-byte ids (part of the on-disk format) and hashers.

xxh3-128 is the default: at ~15 GB/s it is faster than a warm read, so verifying is
bound by the disk, not the hash. blake3 and sha256 are there for users who want a
cryptographic digest (blake3 is ~4x faster than sha256 here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Union

import blake3
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


def _blake3(data: BytesLike) -> bytes:
    out: bytes = blake3.blake3(data).digest()
    return out


def _sha256(data: BytesLike) -> bytes:
    return hashlib.sha256(data).digest()


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("xxh3", 1, 16, xxhash.xxh3_128, _xxh3),
    Algorithm("blake3", 2, 32, blake3.blake3, _blake3),
    Algorithm("sha256", 3, 32, hashlib.sha256, _sha256),
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

MAP_STEP = 64 * 1024 * 1024  # a mapped file is hashed in slices this big (bounded page-ins)
# A forked worker costs a few ms and the parent's page tables; below this much data per
# worker one process is faster (xxh3 hashes a warm GiB in ~50 ms).
BYTES_PER_JOB = 1024 * 1024 * 1024


def digest_file(algo: str, path: str) -> bytes:
    """The digest of a whole file, hashed from a read-only mapping (no copy into a buffer).

    Raises OSError for a file that cannot be opened. An empty file has no mapping.
    """
    import mmap
    import os

    h = hasher(algo)
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return h.digest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(mm)
            try:
                for start in range(0, size, MAP_STEP):
                    chunk = view[start : start + MAP_STEP]
                    h.update(chunk)
                    chunk.release()
            finally:
                view.release()
    return h.digest()


def _digest_share(algo: str, paths: list[str]) -> list[bytes | str]:
    out: list[bytes | str] = []
    for path in paths:
        try:
            out.append(digest_file(algo, path))
        except OSError as exc:
            out.append(f"{path}: {exc.strerror or exc}")
    return out


def digest_files_parallel(
    algo: str, paths: list[str], sizes: list[int] | None = None, jobs: int | None = None
) -> list[bytes | str]:
    """Digests of whole files, in order, hashed by ``jobs`` forked processes (default: the
    CPUs this process may use, one per BYTES_PER_JOB of data); a file that cannot be read
    gives its error text instead.

    The hashers hold the GIL, so threads would not help; fork shares the parent's imports,
    so a worker starts in milliseconds. Files are dealt largest first to the least-loaded
    worker (``sizes`` in bytes; measured when not given). Costs one read of every file.
    Falls back to this process for one job, one file, or where fork is unavailable.
    """
    import os

    if sizes is None:
        sizes = [os.stat(p).st_size if os.path.exists(p) else 0 for p in paths]
    if jobs is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        jobs = min(cpus or 1, sum(sizes) // BYTES_PER_JOB)
    jobs = max(1, min(jobs, len(paths)))
    if jobs == 1 or not hasattr(os, "fork"):
        return _digest_share(algo, paths)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for i in sorted(range(len(paths)), key=lambda i: -sizes[i]):
        w = loads.index(min(loads))
        shares[w].append(i)
        loads[w] += sizes[i]
    out: list[bytes | str] = [b""] * len(paths)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        futures = [
            (share, pool.submit(_digest_share, algo, [paths[i] for i in share]))
            for share in shares
            if share
        ]
        for share, future in futures:
            for i, result in zip(share, future.result(), strict=True):
                out[i] = result
    return out
