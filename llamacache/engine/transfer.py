"""Entries leaving a disk tier whole (backup) and coming back (restore), as stored bytes.

An archive's own layout (tar members, manifest rows, how keys are written as text) is
``ops/``'s business; what an entry *is* stays here, beside the code that writes it: its
header is parsed and checked only here, a payload goes out only after it matched its
digest, and comes in only if it matches the header it arrives with. So backup and
restore move opaque ``meta`` bytes plus payload streams and never read the format.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from llamacache.engine import framing
from llamacache.engine.disk import DiskTier, ExportedEntry
from llamacache.engine.netformat import safe_dtype
from llamacache.errors import CorruptEntryError

__all__ = [
    "ExportSkipped",
    "ExportedEntry",
    "Header",
    "export_entries",
    "header_of",
    "import_entry",
    "payload_intact",
    "read_header",
]

_ONE_READ = 1 << 20  # payloads up to this are checked from one read (no 4 MiB block buffer)


@dataclass(frozen=True)
class Header:
    """What an entry header says, as an archive manifest records it."""

    kind: str  # bytes, str, numpy, pickle, rawfile
    checksum: str  # digest algorithm name
    digest: bytes
    size: int  # stored payload length


@dataclass(frozen=True)
class ExportSkipped:
    """An entry a backup could not take: ``vanished`` (removed meanwhile) or ``corrupt``."""

    key: Hashable
    reason: str
    detail: str = ""


def read_header(meta: bytes) -> Header:
    """Parse a header that comes from elsewhere (an archive); ValueError saying what is wrong.

    Refuses a damaged header and an array header whose dtype is not plain numeric or text
    (an object dtype would need pickle to rebuild).
    """
    parsed = framing.parse_meta(meta)
    if parsed.kind == "numpy" and not safe_dtype(parsed.dtype):
        raise ValueError(f"array dtype {parsed.dtype!r} refused")
    return Header(parsed.kind, parsed.checksum, parsed.digest, parsed.stored_len)


def header_of(entry: ExportedEntry) -> Header:
    """What an exported entry's header says (already parsed and verified by the export)."""
    p = entry.parsed
    return Header(p.kind, p.checksum, p.digest, p.stored_len)


def payload_intact(meta: bytes, source: BinaryIO, size: int) -> bool:
    """True when ``source`` (exactly ``size`` bytes, e.g. a slice of a staging file) matches
    ``meta``'s length and digest. A damaged header is False. One pass; never decompresses."""
    if size <= _ONE_READ:
        return framing.verify_payload(meta, _read(source, size))
    return framing.verify_payload(meta, source)


def import_entry(
    disk: DiskTier,
    key: Hashable,
    meta: bytes,
    source: BinaryIO,
    size: int,
    expire: float | None = None,
) -> None:
    """Store an entry that arrives as a header and a payload stream (restore).

    Inline below the tier's ``file_threshold``, else streamed to a crash-safe value file.
    The payload is checked against ``meta`` as it is stored, so bytes that do not match
    their header are never indexed: CorruptEntryError, and nothing is left behind.
    ``expire`` is seconds from now. Costs one hash pass plus the tier's put.
    """
    if size >= disk.settings.file_threshold:
        disk.put_framed(key, meta, source, expire)
        return
    payload = _read(source, size)
    if not framing.verify_payload(meta, payload):
        raise CorruptEntryError(disk.name, key, "checksum mismatch")
    disk.put(key, meta, payload, expire)


def _read(source: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes of ``source`` (a raw stream may return fewer per read)."""
    parts: list[bytes] = []
    left = size
    while left > 0 and (chunk := source.read(left)):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def export_entries(disk: DiskTier) -> Iterator[ExportedEntry | ExportSkipped]:
    """Every entry of the tier in storage order, verified (``DiskTier.export``), or why not.

    Each yielded ``ExportedEntry.handle`` is the caller's to close. Costs one hash pass
    over every payload (a file's once per identity per process); records no access.
    """
    for key in disk.iter_keys():
        try:
            entry = disk.export(key)
        except CorruptEntryError as exc:
            yield ExportSkipped(key, "corrupt", exc.reason)
            continue
        yield ExportSkipped(key, "vanished") if entry is None else entry
