"""Reading a backup archive safely: its manifest, which members are allowed, staging, checks.

An archive comes from elsewhere, so it is data until every part is checked, and a hostile
one costs at most what its manifest declares. Nothing here writes to a cache; the work
is done in three steps so that ``restore`` commits only a fully known-good archive:

1. ``read_manifest`` streams the archive once without writing anything: every member is
   checked (plain files with our names only) and the manifest is parsed one row at a time
   in bounded memory (a row limit, a size limit per row), and every field of every row is
   validated. Keys are decoded only if they need no code (pickled keys stay opaque bytes).
2. ``stage`` streams it again and copies only the members the manifest lists, each
   exactly its declared size, into one staging file: an undeclared or oversized member
   (a 1 GiB run of zeros in a 33 KB archive) is refused before it is copied.
3. ``check`` verifies every staged payload against its header's digest.

Entry headers are parsed and payloads checked by the engine (``engine.transfer``); this
module owns only the archive's own layout: members, manifest rows, typed keys.
"""

from __future__ import annotations

import base64
import errno
import io
import math
import re
import tarfile
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from llamacache.engine import transfer
from llamacache.errors import DiskFullError
from llamacache.ops._rows import ArchiveError, RowReader
from llamacache.ops.backup import ENTRY_DIR, MANIFEST, MANIFEST_SCHEMA, PREFIX, decode_key

__all__ = [
    "ArchiveError",
    "Entry",
    "Manifest",
    "PickledKey",
    "Row",
    "Slice",
    "check",
    "read_manifest",
    "stage",
]

_MEMBER = re.compile(rf"^{re.escape(ENTRY_DIR)}(\d{{8}})$")
MAX_ENTRIES = 1_000_000  # rows a manifest may hold (restore --max-entries changes it)
_KEY_TYPES = ("str", "bytes", "int", "float", "typed", "pickle")
COPY = 1 << 20


@dataclass(frozen=True)
class PickledKey:
    """A key stored pickled: opaque bytes until ``restore --allow-pickle`` loads it."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Row:
    """One validated manifest row (every field checked; nothing decoded that runs code)."""

    member: str
    cache: str
    key: Hashable  # a PickledKey when the key was pickled
    meta: bytes
    kind: str
    size: int
    store_time: float
    expire_time: float | None

    @property
    def needs_pickle(self) -> bool:
        """True when restoring this row would load a pickle (its value or its key)."""
        return self.kind == "pickle" or isinstance(self.key, PickledKey)


@dataclass
class Manifest:
    """The manifest's head (schema, caches) and its validated rows."""

    head: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    @property
    def declared_bytes(self) -> int:
        return sum(r.size for r in self.rows)


@dataclass(frozen=True)
class Entry:
    cache: str
    key: Hashable
    meta: bytes
    offset: int  # where the payload starts in the staging file
    size: int
    store_time: float
    expire_time: float | None
    kind: str = "bytes"


# -- members -----------------------------------------------------------------------------------


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


def _members(archive: Path, raw: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Every member of the .tar.zst stream, each checked by ``_refuse`` (ArchiveError)."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                why = _refuse(member)
                if why is not None:
                    raise ArchiveError(f"{archive}: refusing archive member {member.name!r}: {why}")
                yield member, tar
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise ArchiveError(f"{archive}: not a readable .tar.zst backup ({exc})") from None


# -- the manifest, in bounded memory -----------------------------------------------------------


def _number(value: object, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"{what} {value!r} is not a number")
    return float(value)  # type: ignore[arg-type]


def _row(raw: Any, caches: dict[str, Any]) -> Row:
    """One manifest row, every field validated (ValueError/KeyError/TypeError otherwise)."""
    if not isinstance(raw, dict):
        raise TypeError("a row is not an object")
    member, cache = raw["member"], raw["cache"]
    if not isinstance(member, str) or not _MEMBER.match(member):
        raise ValueError(f"member {member!r} is not an entry name")
    if not isinstance(cache, str) or cache not in caches:
        raise ValueError(f"cache {cache!r} is not listed in the manifest")
    key_type, key_text = raw["key_type"], raw["key"]
    if key_type not in _KEY_TYPES:
        raise ValueError(f"unknown key type {key_type!r}")
    if key_type == "pickle":  # never loaded while checking: opaque bytes
        if not isinstance(key_text, str):
            raise TypeError("key is not text")
        key: Hashable = PickledKey(base64.b64decode(key_text, validate=True))
    else:
        key = decode_key(key_type, key_text)
    meta_text = raw["meta"]
    if not isinstance(meta_text, str) or len(meta_text) > 4096:
        raise ValueError("meta is not a short base64 text")
    meta_bytes = base64.b64decode(meta_text, validate=True)
    meta = transfer.read_header(meta_bytes)  # ValueError: damaged, or an unsafe array dtype
    size = raw["size"]
    if type(size) is not int or size < 0 or size != meta.size:
        raise ValueError(f"size {size!r} does not match the entry header")
    if raw.get("kind", meta.kind) != meta.kind:
        raise ValueError(f"kind {raw.get('kind')!r} does not match the entry header")
    store = raw.get("store_time")
    expire = raw.get("expire_time")
    return Row(
        member,
        cache,
        key,
        meta_bytes,
        meta.kind,
        size,
        0.0 if store is None else _number(store, "store_time"),
        None if expire is None else _number(expire, "expire_time"),
    )


def read_manifest(archive: Path, max_entries: int = MAX_ENTRIES) -> Manifest:
    """Pass one: check every member and parse + validate the manifest; writes nothing.

    Memory is bounded by ``max_entries`` validated rows (a few hundred bytes each), never
    by the manifest's text. Every problem is an ArchiveError naming the archive, the
    row and the field; one bad row and nothing is restored.
    """
    sizes: dict[str, int] = {}
    manifest: Manifest | None = None
    digest = declared_sum = None
    with open(archive, "rb") as raw:
        for member, tar in _members(archive, raw):
            if member.isdir():
                continue
            if len(sizes) > max_entries + 2:
                raise ArchiveError(f"{archive}: more than {max_entries} members")
            sizes[member.name] = member.size
            src = tar.extractfile(member)
            assert src is not None
            if member.name == MANIFEST:
                manifest, digest = _parse(archive, src, max_entries, sizes)
            elif member.name == MANIFEST + ".sha256":
                declared_sum = src.read(64).decode(errors="replace")
    if manifest is None:
        raise ArchiveError(f"{archive}: no manifest (truncated, or not a llamacache backup)")
    if declared_sum is not None and declared_sum != digest:
        raise ArchiveError(f"{archive}: the manifest does not match its checksum")
    return manifest


def _parse(
    archive: Path, src: IO[bytes], max_entries: int, sizes: dict[str, int]
) -> tuple[Manifest, str]:
    """The manifest, row by row; ``sizes`` holds the members seen before it (ours come first),
    so a row naming a missing, resized or already listed member fails at once."""
    reader = RowReader(src, archive)
    head = reader.head()
    caches = head.get("caches")
    if head.get("schema") != MANIFEST_SCHEMA or not isinstance(caches, dict):
        raise ArchiveError(f"{archive}: not a llamacache backup manifest")
    manifest = Manifest(head)
    seen: set[str] = set()
    for n, raw in enumerate(reader.rows(), 1):
        if n > max_entries:
            raise ArchiveError(
                f"{archive}: the manifest lists more than {max_entries} entries; nothing was "
                "restored (a larger max_entries, --max-entries N, allows more)"
            )
        try:
            row = _row(raw, caches)
        except KeyError as exc:
            raise ArchiveError(
                f"{archive}: manifest row {n} is missing {exc}; nothing was restored"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ArchiveError(
                f"{archive}: manifest row {n}: {exc}; nothing was restored"
            ) from None
        got = sizes.get(row.member)
        if got != row.size or row.member in seen:
            why = "listed twice" if row.member in seen else (
                "missing" if got is None else f"{got} bytes, manifest says {row.size}"
            )  # fmt: skip
            raise ArchiveError(
                f"{archive}: {row.member} ({row.cache}: {row.key!r}) failed verification, "
                f"nothing was restored: {why}"
            )
        seen.add(row.member)
        manifest.rows.append(row)
    return manifest, reader.sha.hexdigest()


# -- staging and checking ----------------------------------------------------------------------


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


def stage(archive: Path, staging: Path, manifest: Manifest) -> dict[str, tuple[int, int]]:
    """Pass two: copy each listed member, at most its declared size, into one staging file.

    Returns member -> (offset, size). One file, not one per entry: creating and unlinking
    thousands of small files costs more than everything else a restore does. Members the
    manifest does not list are skipped (never written), so the staging file is at most
    ``manifest.declared_bytes`` long. ENOSPC is a DiskFullError naming the staging file.
    """
    declared = {r.member: r.size for r in manifest.rows}
    staged: dict[str, tuple[int, int]] = {}
    try:
        with open(archive, "rb") as raw, open(staging, "xb") as out:
            for member, tar in _members(archive, raw):
                want = declared.get(member.name)
                if want is None or member.name in staged:
                    continue
                if member.size != want:
                    raise ArchiveError(f"{archive}: {member.name} changed while restoring")
                src = tar.extractfile(member)
                assert src is not None
                offset = out.tell()
                staged[member.name] = (offset, _copy(src, out, want))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"restore: no space left staging {archive} in {staging} "
                f"({manifest.declared_bytes} bytes needed)"
            ) from None
        raise
    return staged


def _copy(src: IO[bytes], out: IO[bytes], limit: int) -> int:
    size = 0
    while size < limit and (chunk := src.read(min(COPY, limit - size))):
        out.write(chunk)
        size += len(chunk)
    return size


def check(
    archive: Path, manifest: Manifest, staging: Path, staged: dict[str, tuple[int, int]]
) -> list[Entry]:
    """Every staged payload verified against its row's header; ArchiveError otherwise."""
    entries: list[Entry] = []
    bad: list[str] = []
    with open(staging, "rb") as handle:
        for row in manifest.rows:
            offset, size = staged.get(row.member, (0, -1))
            ok = size == row.size and transfer.payload_intact(
                row.meta,
                Slice(handle, offset, size),  # type: ignore[arg-type]
                size,
            )
            if not ok:
                bad.append(f"{row.member} ({row.cache}: {row.key!r}): checksum mismatch")
                continue
            entries.append(
                Entry(
                    row.cache,
                    row.key,
                    row.meta,
                    offset,
                    size,
                    row.store_time,
                    row.expire_time,
                    row.kind,
                )
            )
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ArchiveError(
            f"{archive}: {len(bad)} entries failed verification, nothing was restored: "
            + "; ".join(bad[:3])
            + more
        )
    return entries
