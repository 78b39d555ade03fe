"""Building hostile backup archives: read one, change members or manifest rows, write it back."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

MANIFEST = "llamacache-backup/manifest.json"
Member = tuple[tarfile.TarInfo, Any]  # data: bytes, or a (size, reader factory) pair


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            out = []
            for m in tar:
                f = tar.extractfile(m)
                out.append((m, f.read() if f else b""))
            return out


def write(path: Path, items: list[Member]) -> None:
    with (
        open(path, "wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        for info, data in items:
            if isinstance(data, tuple):
                info.size, make = data
                tar.addfile(info, make())
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def with_manifest(items: list[Member], change: Callable[[dict[str, Any]], None]) -> list[Member]:
    """The members with the manifest edited by ``change`` (and its checksum member updated)."""
    out: list[Member] = []
    for info, data in items:
        if info.name == MANIFEST:
            body = json.loads(data)
            change(body)
            data = json.dumps(body, separators=(",", ":")).encode()
            digest = hashlib.sha256(data).hexdigest().encode()
        elif info.name == MANIFEST + ".sha256":
            data = digest
        out.append((info, data))
    return out


class Zeros(io.RawIOBase):
    """``n`` zero bytes, produced as they are read (a 1 GiB member costs no memory)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        k = min(len(buffer), self.left)
        buffer[:k] = bytes(k)
        self.left -= k
        return k


class Repeat(io.RawIOBase):
    """``head`` + ``row`` x n (comma-joined) + ``tail``, produced as read."""

    def __init__(self, head: bytes, row: bytes, n: int, tail: bytes) -> None:
        self.parts = [head]
        self.row, self.n, self.tail = row, n, tail
        self.buf = head

    @staticmethod
    def size(head: bytes, row: bytes, n: int, tail: bytes) -> int:
        return len(head) + n * len(row) + max(0, n - 1) + len(tail)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self.buf) < len(buffer) and (self.n or self.tail):
            if self.n:
                batch = min(self.n, 10_000)
                self.n -= batch
                sep = b"," if self.n else b""
                self.buf += b",".join([self.row] * batch) + sep
            else:
                self.buf += self.tail
                self.tail = b""
        k = min(len(buffer), len(self.buf))
        buffer[:k] = self.buf[:k]
        self.buf = self.buf[k:]
        return k
