"""Crash-safe value files: write to ``tmp/``, fsync, rename into place, and only then index.

diskcache alone writes value files straight to their final name without fsync; a crash
would leave an index row pointing at half a file. Here the final name appears only once
the bytes are complete (and durable, per ``durability``), so a crash leaves at worst an
orphan for ``repair``/``clean`` to sweep.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, UNKNOWN

from llamacache.engine import checksums
from llamacache.engine.safety import leads_outside

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

    On any failure the temp file is removed and nothing appears at ``full_path``.
    """
    tmp_dir = os.path.join(directory, "tmp")
    os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
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
        for attempt in range(10):  # a concurrent remove may prune the xx/yy dirs under us
            try:  # ... even between makedirs creating xx and then xx/yy
                os.makedirs(final_dir, exist_ok=True)
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
