"""`restore`: verify a backup completely, then put it into caches (merge, or atomic replace).

Order of work, so that a bad or interrupted restore changes nothing:

1. read the archive once writing nothing: refuse any member that is not a plain file
   with one of our names (``..``, absolute paths, links and devices are named in the
   error), parse the manifest in bounded memory (a row limit) and validate every field
   of every row; pickled keys stay opaque bytes;
2. stream the listed members, each at most its declared size, into a private staging
   file under the cache root, check every payload's digest and every target cache name;
   pickled values (or keys) need ``allow_pickle`` and are loaded only after every
   check passed — one failure and the staging folder is deleted, nothing written;
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
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacache.engine import transfer
from llamacache.engine.disk import DiskTier
from llamacache.engine.generation import bump_generation
from llamacache.engine.locking import admin_lock
from llamacache.engine.safety import ensure_cache_root, ensure_private_dir
from llamacache.errors import OptionError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops._archive import (
    MAX_ENTRIES,
    ArchiveError,
    Entry,
    PickledKey,
    Slice,
    check,
    read_manifest,
    stage,
)
from llamacache.ops._report import Report

__all__ = ["ArchiveError", "RestoreReport", "RestoredCache", "restore"]

Progress = Callable[[int, int | None], None]
_BATCH = 256  # entries inserted per SQLite transaction


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


def _targets(
    manager: CacheManager, manifest: dict[str, Any], cache: str | None, into: str | None
) -> dict[str, str]:
    """archive cache name -> configured cache to write (UsageError before anything is written)."""
    names = list(manifest.get("caches", {}))
    if cache is not None:
        if cache not in names:
            raise OptionError(
                "cache",
                f"not in the archive; it holds {', '.join(names) or 'nothing'}",
                value=cache,
            )
        names = [cache]
    if into is not None:
        if len(names) != 1:
            raise OptionError(
                "into",
                f"the archive holds {len(names)} caches ({', '.join(names)}); "
                "pick one with cache NAME",
                value=into,
                also=("cache",),
            )
        mapping = {names[0]: into}
    else:
        mapping = {n: n for n in names}
    for target in mapping.values():
        manager.settings.cache(target)  # CacheNotFoundError (exit 2) names the known caches
    return mapping


# -- committing --------------------------------------------------------------------------------


def _insert(
    disk: DiskTier, entries: list[Entry], staging: Path, tick: Callable[[], None]
) -> tuple[int, int]:
    """Put verified entries into a disk tier, oldest first (keeps fifo order); (count, expired).

    The engine checks each payload against its header again as it stores it
    (``transfer.import_entry``), so a staging file changed since ``check`` is never indexed.
    """
    now, count, expired = time.time(), 0, 0
    with open(staging, "rb") as handle, contextlib.ExitStack() as stack:
        for i, e in enumerate(sorted(entries, key=lambda e: e.store_time)):
            if i % _BATCH == 0:  # one transaction per batch: short writer-lock holds
                stack.close()
                stack.enter_context(disk.transaction())
            ttl = None if e.expire_time is None else float(e.expire_time) - now
            if ttl is not None and ttl <= 0:
                expired += 1
            else:
                source = Slice(handle, e.offset, e.size)
                transfer.import_entry(disk, e.key, e.meta, source, e.size, ttl)  # type: ignore[arg-type]
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
    entries: list[Entry],
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
            bump_generation(old)  # processes holding the old folder see a new identity too
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


def _load_keys(archive: Path, entries: list[Entry]) -> list[Entry]:
    """Load pickled keys (only reached with allow_pickle, after every checksum passed)."""
    out = []
    for e in entries:
        if isinstance(e.key, PickledKey):
            try:
                key = pickle.loads(e.key.data)
                hash(key)
            except Exception as exc:  # any failure of a foreign pickle is a bad archive
                data = base64.b64encode(e.key.data[:16]).decode()
                raise ArchiveError(
                    f"{archive}: pickled key {data}... cannot be loaded ({exc}); "
                    "nothing was restored"
                ) from None
            e = dataclasses.replace(e, key=key)
        out.append(e)
    return out


def restore(
    manager: CacheManager,
    archive: Path,
    *,
    cache: str | None = None,
    into: str | None = None,
    mode: str = "merge",
    wait: float = 0.0,
    progress: Progress | None = None,
    allow_pickle: bool = False,
    max_entries: int = MAX_ENTRIES,
) -> RestoreReport:
    """Restore ``archive`` into its caches (or ``cache`` from it ``into`` another name).

    Raises ArchiveError (exit 1) for a damaged, tampered or unsafe archive and UsageError /
    CacheNotFoundError (exit 2) for bad names, or for pickled values without
    ``allow_pickle`` (an archive from elsewhere could run code when they are loaded) — in
    every such case before writing to any cache. Costs: the archive is decompressed twice
    (checking, staging), the staging file takes at most the manifest's declared size on
    the cache filesystem, and every payload is read twice before it is inserted.
    """
    if mode not in ("merge", "replace"):
        raise UsageError(f"mode {mode!r}: expected merge or replace")
    if not archive.is_file():
        raise UsageError(f"{archive}: no such backup file")
    t0 = time.monotonic()
    manifest = read_manifest(archive, max_entries)
    mapping = _targets(manager, manifest.head, cache, into)
    pickled = sum(r.needs_pickle for r in manifest.rows if r.cache in mapping)
    if pickled and not allow_pickle:
        raise UsageError(
            f"{archive}: {pickled} entries hold pickled values or keys, which run code when "
            "loaded; nothing was restored. If you trust this archive, allow pickles "
            "(allow_pickle, --allow-pickle)"
        )
    with _staging(manager.settings.root) as folder:
        staging = folder / "payloads"
        staged = stage(archive, staging, manifest)
        entries = _load_keys(archive, check(archive, manifest, staging, staged))
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
                    bump_generation(tiered.settings.path)
            size = sum(e.size for e in mine)
            results.append(RestoredCache(target, source, count, size, expired))
    return RestoreReport(
        archive=archive.absolute(),
        mode=mode,
        verified=len(entries),
        caches=tuple(results),
        seconds=time.monotonic() - t0,
    )
