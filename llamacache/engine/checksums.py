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
