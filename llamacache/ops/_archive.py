"""Reading a backup archive safely: which members are allowed, staging, verification.

Nothing here writes to a cache. ``stage`` streams the payloads into one staging file
(refusing any member that is not a plain file with one of our names), and ``check``
verifies every payload against the manifest, so ``restore`` starts committing only
once the whole archive is known to be good.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from llamacache.engine import framing
from llamacache.errors import LlamacacheError
from llamacache.ops.backup import ENTRY_DIR, MANIFEST, MANIFEST_SCHEMA, PREFIX, decode_key

_MEMBER = re.compile(rf"^{re.escape(ENTRY_DIR)}(\d{{8}})$")
_MAX_MANIFEST = 1 << 30
COPY = 1 << 20


class ArchiveError(LlamacacheError):
    """The archive is damaged, tampered with, or not a llamacache backup (exit 1)."""


@dataclass(frozen=True)
class Entry:
    cache: str
    key: Hashable
    meta: bytes
    offset: int  # where the payload starts in the staging file
    size: int
    store_time: float
    expire_time: float | None


# -- reading and checking the archive ----------------------------------------------------------


def _refuse(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be extracted, or None when it is one of ours."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "it is an absolute path"
    if ".." in parts:
        return "it would escape the target directory"
    if member.issym() or member.islnk():
        return f"it is a link (to {member.linkname!r})"
    if member.isdev() or not (member.isreg() or member.isdir()):
        return "it is a device or special file"
    if member.isdir():
        return None if name.rstrip("/").startswith(PREFIX) else "it is not part of a backup"
    if name in (MANIFEST, MANIFEST + ".sha256") or _MEMBER.match(name):
        return None
    return "it is not part of a llamacache backup"


def _copy(src: IO[bytes], out: IO[bytes]) -> int:
    size = 0
    while chunk := src.read(COPY):
        out.write(chunk)
        size += len(chunk)
    return size


class Slice(io.RawIOBase):
    """``size`` bytes of ``f`` from ``offset``, as a stream (one payload of the staging file)."""

    def __init__(self, f: IO[bytes], offset: int, size: int) -> None:
        self._f, self._left = f, size
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._left]
        n = self._f.readinto(view) if view.nbytes else 0  # type: ignore[attr-defined]
        self._left -= n
        return n


def stage(archive: Path, staging: Path) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Stream the archive's payloads into one staging file (``staging``); returns the manifest
    and member -> (offset, size). One file, not one per entry: creating and unlinking
    thousands of small files costs more than everything else a restore does.
    """
    manifest_body: bytes | None = None
    manifest_sum: bytes | None = None
    staged: dict[str, tuple[int, int]] = {}
    try:
        with open(archive, "rb") as raw, open(staging, "xb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    why = _refuse(member)
                    if why is not None:
                        raise ArchiveError(
                            f"{archive}: refusing archive member {member.name!r}: {why}"
                        )
                    if member.isdir():
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    if member.name == MANIFEST:
                        manifest_body = src.read(_MAX_MANIFEST)
                    elif member.name == MANIFEST + ".sha256":
                        manifest_sum = src.read(64)
                    else:
                        offset = out.tell()
                        staged[member.name] = (offset, _copy(src, out))
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise ArchiveError(f"{archive}: not a readable .tar.zst backup ({exc})") from None
    if manifest_body is None:
        raise ArchiveError(f"{archive}: no manifest (truncated, or not a llamacache backup)")
    if manifest_sum is not None and hashlib.sha256(manifest_body).hexdigest() != (
        manifest_sum.decode(errors="replace")
    ):
        raise ArchiveError(f"{archive}: the manifest does not match its checksum")
    try:
        manifest = json.loads(manifest_body)
    except ValueError as exc:
        raise ArchiveError(f"{archive}: the manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise ArchiveError(f"{archive}: not a llamacache backup manifest")
    return manifest, staged


def check(
    archive: Path, manifest: dict[str, Any], staging: Path, staged: dict[str, tuple[int, int]]
) -> list[Entry]:
    """Every manifest row parsed and its staged payload verified; ArchiveError otherwise."""
    entries: list[Entry] = []
    bad: list[str] = []
    with open(staging, "rb") as handle:
        for row in manifest.get("entries", []):
            _check_row(row, handle, staged, entries, bad)
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ArchiveError(
            f"{archive}: {len(bad)} entries failed verification, nothing was restored: "
            + "; ".join(bad[:3])
            + more
        )
    return entries


def _check_row(
    row: Any,
    handle: IO[bytes],
    staged: dict[str, tuple[int, int]],
    entries: list[Entry],
    bad: list[str],
) -> None:
    """Verify one manifest row against its staged payload; appends to ``entries`` or ``bad``."""
    try:
        key = decode_key(row["key_type"], row["key"])
        meta = base64.b64decode(row["meta"], validate=True)
        offset, size = staged[row["member"]]
        if size <= COPY:  # small: one read (verify_payload's file path allocates 4 MiB)
            handle.seek(offset)
            ok = framing.verify_payload(meta, handle.read(size))
        else:
            ok = framing.verify_payload(meta, Slice(handle, offset, size))  # type: ignore[arg-type]
        if not ok or size != row["size"]:
            bad.append(f"{row['member']} ({row['cache']}: {key!r}): checksum mismatch")
            return
        entries.append(
            Entry(
                str(row["cache"]),
                key,
                meta,
                offset,
                size,
                float(row.get("store_time") or 0.0),
                row.get("expire_time"),
            )
        )
    except KeyError as exc:
        bad.append(f"{row.get('member', '?')}: missing {exc}")
    except (ValueError, TypeError, AttributeError) as exc:
        bad.append(f"{row.get('member', '?') if isinstance(row, dict) else row}: {exc}")
