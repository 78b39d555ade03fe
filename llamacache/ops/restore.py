"""`restore`: verify a backup completely, then put it into caches (merge, or atomic replace).

Order of work, so that a bad or interrupted restore changes nothing:

1. stream the archive into a private staging folder under the cache root, refusing any
   member that is not a plain file with one of our names (``..``, absolute paths,
   links and devices are named in the error);
2. check every staged payload against the manifest's header (size and digest) and every
   target cache name — one failure and the staging folder is deleted, nothing written;
3. ``--merge`` (default): insert each entry through the engine under the cache's admin
   lock (archive entries win over existing keys; the rest of the cache stays);
   ``--replace``: build a complete new cache next to the old one, then swap the two
   directories with one ``renameat2(RENAME_EXCHANGE)`` (two renames where the kernel
   lacks it); the old cache is untouched until the new one is complete.

Processes that still have the old cache open keep using the old files until they reopen.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from llamacache.engine import framing
from llamacache.engine.disk import DiskTier
from llamacache.engine.safety import ensure_cache_root, ensure_private_dir
from llamacache.errors import LlamacacheError, UsageError
from llamacache.locking import admin_lock
from llamacache.manager import CacheManager
from llamacache.ops._report import Report
from llamacache.ops.backup import ENTRY_DIR, MANIFEST, MANIFEST_SCHEMA, PREFIX, decode_key

Progress = Callable[[int, int | None], None]
_MEMBER = re.compile(rf"^{re.escape(ENTRY_DIR)}(\d{{8}})$")
_MAX_MANIFEST = 1 << 30
_COPY = 1 << 20
_BATCH = 256  # entries inserted per SQLite transaction


class ArchiveError(LlamacacheError):
    """The archive is damaged, tampered with, or not a llamacache backup (exit 1)."""


@dataclass(frozen=True)
class RestoredCache:
    name: str  # the cache written to
    source: str  # the cache name in the archive
    entries: int
    bytes: int
    expired: int  # entries whose time to live ran out since the backup (not restored)


@dataclass(frozen=True)
class RestoreReport(Report):
    schema = "restore"
    archive: Path
    mode: str  # "merge" | "replace"
    verified: int  # payloads checked against their digests (all of them)
    caches: tuple[RestoredCache, ...]
    seconds: float


@dataclass(frozen=True)
class _Entry:
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
    while chunk := src.read(_COPY):
        out.write(chunk)
        size += len(chunk)
    return size


class _Slice(io.RawIOBase):
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


def _stage(archive: Path, staging: Path) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
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


def _check(
    archive: Path, manifest: dict[str, Any], staging: Path, staged: dict[str, tuple[int, int]]
) -> list[_Entry]:
    """Every manifest row parsed and its staged payload verified; ArchiveError otherwise."""
    entries: list[_Entry] = []
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
    entries: list[_Entry],
    bad: list[str],
) -> None:
    """Verify one manifest row against its staged payload; appends to ``entries`` or ``bad``."""
    try:
        key = decode_key(row["key_type"], row["key"])
        meta = base64.b64decode(row["meta"], validate=True)
        offset, size = staged[row["member"]]
        if size <= _COPY:  # small: one read (verify_payload's file path allocates 4 MiB)
            handle.seek(offset)
            ok = framing.verify_payload(meta, handle.read(size))
        else:
            ok = framing.verify_payload(meta, _Slice(handle, offset, size))  # type: ignore[arg-type]
        if not ok or size != row["size"]:
            bad.append(f"{row['member']} ({row['cache']}: {key!r}): checksum mismatch")
            return
        entries.append(
            _Entry(
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


def _targets(
    manager: CacheManager, manifest: dict[str, Any], cache: str | None, into: str | None
) -> dict[str, str]:
    """archive cache name -> configured cache to write (UsageError before anything is written)."""
    names = list(manifest.get("caches", {}))
    if cache is not None:
        if cache not in names:
            raise UsageError(
                f"--cache {cache}: not in the archive; it holds {', '.join(names) or 'nothing'}"
            )
        names = [cache]
    if into is not None:
        if len(names) != 1:
            raise UsageError(
                f"--into {into}: the archive holds {len(names)} caches ({', '.join(names)}); "
                "pick one with --cache NAME"
            )
        mapping = {names[0]: into}
    else:
        mapping = {n: n for n in names}
    for target in mapping.values():
        manager.settings.cache(target)  # CacheNotFoundError (exit 2) names the known caches
    return mapping


# -- committing --------------------------------------------------------------------------------


def _insert(
    disk: DiskTier, entries: list[_Entry], staging: Path, tick: Callable[[], None]
) -> tuple[int, int]:
    """Put verified entries into a disk tier, oldest first (keeps fifo order); (count, expired)."""
    now, count, expired = time.time(), 0, 0
    with open(staging, "rb") as handle, contextlib.ExitStack() as stack:
        for i, e in enumerate(sorted(entries, key=lambda e: e.store_time)):
            if i % _BATCH == 0:  # one transaction per batch: short writer-lock holds
                stack.close()
                stack.enter_context(disk.transaction())
            ttl = None if e.expire_time is None else float(e.expire_time) - now
            if ttl is not None and ttl <= 0:
                expired += 1
            elif e.size < disk.settings.file_threshold:
                handle.seek(e.offset)
                disk.put(e.key, e.meta, handle.read(e.size), ttl)
                count += 1
            else:
                disk.put_framed(e.key, e.meta, _Slice(handle, e.offset, e.size), ttl)  # type: ignore[arg-type]
                count += 1
            tick()
    return count, expired


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically (Linux renameat2); two renames where unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        at_fdcwd = -100
        if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
    aside = b.with_name(b.name + ".old-" + os.urandom(4).hex())
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _replace(
    manager: CacheManager,
    target: str,
    entries: list[_Entry],
    staging: Path,
    wait: float,
    tick: Callable[[], None],
) -> tuple[int, int]:
    settings = manager.settings.cache(target)
    old = settings.path
    _sweep(old.parent)
    build = ensure_private_dir(
        old.parent / f".restore-build-{target}-{os.getpid()}-{os.urandom(4).hex()}"
    )
    try:
        disk = DiskTier(dataclasses.replace(settings, path=build))
        try:
            result = _insert(disk, entries, staging, tick)
        finally:
            disk.close()
        opened = manager.opened().get(target)
        with admin_lock(old, cache=target, wait=wait):
            if opened is not None:
                opened.close()
            _exchange(build, old)  # build now holds the old cache
        return result
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(parent: Path) -> None:
    """Remove staging folders left by restores that were killed (their pid is gone)."""
    for path in parent.glob(".restore-*"):
        parts = path.name.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    ensure_cache_root(root)
    _sweep(root)
    path = ensure_private_dir(root / f".restore-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def restore(
    manager: CacheManager,
    archive: Path,
    *,
    cache: str | None = None,
    into: str | None = None,
    mode: str = "merge",
    wait: float = 0.0,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore ``archive`` into its caches (or ``cache`` from it ``into`` another name).

    Raises ArchiveError (exit 1) for a damaged, tampered or unsafe archive and UsageError /
    CacheNotFoundError (exit 2) for bad names — in every such case before writing to any
    cache. Costs: the archive is staged on the cache filesystem (its uncompressed size)
    and every payload is read twice (staging, verification) before it is inserted.
    """
    if mode not in ("merge", "replace"):
        raise UsageError(f"mode {mode!r}: expected merge or replace")
    if not archive.is_file():
        raise UsageError(f"{archive}: no such backup file")
    t0 = time.monotonic()
    with _staging(manager.settings.root) as folder:
        staging = folder / "payloads"
        manifest, staged = _stage(archive, staging)
        entries = _check(archive, manifest, staging, staged)
        mapping = _targets(manager, manifest, cache, into)
        chosen = [e for e in entries if e.cache in mapping]
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(chosen))

        results: list[RestoredCache] = []
        for source, target in mapping.items():
            mine = [e for e in chosen if e.cache == source]
            if mode == "replace":
                count, expired = _replace(manager, target, mine, staging, wait, tick)
            else:
                tiered = manager.cache(target)
                with admin_lock(tiered.settings.path, cache=target, wait=wait):
                    for e in mine:
                        tiered.memory.discard(e.key)
                    count, expired = _insert(tiered.disk, mine, staging, tick)
            size = sum(e.size for e in mine)
            results.append(RestoredCache(target, source, count, size, expired))
    return RestoreReport(
        archive=archive.absolute(),
        mode=mode,
        verified=len(entries),
        caches=tuple(results),
        seconds=time.monotonic() - t0,
    )
