"""``warm``: fill a cache before a job, streamed, hashed and indexed as it copies.

Files are read in 4 MiB blocks (``TieredCache.put_file``), never whole; a file already cached
under its key with the same size and checksum is skipped (one read to hash it, no write).
Model caches store each file's bytes once, as a blob named after its digest (``ml.revisions``):
a file of a size some cached revision lists is hashed first and skipped when its blob is
there; any other is copied and hashed in one pass (``put_file_as``); a source seen twice in
one run (hub revisions sharing a blob) is stored once. A revision manifest
(``{model}@{revision}/.manifest.json``) is written only after every file of that revision is
in, so a warm stopped by ``--budget`` or Ctrl-C never leaves a revision that looks complete;
hub refs (``refs/main``) are recorded after it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacache.engine import checksums, framing
from llamacache.engine.tiered import TieredCache
from llamacache.errors import CacheIOError, UsageError
from llamacache.formats import VALIDATORS
from llamacache.manager import CacheManager
from llamacache.ml import model as M
from llamacache.ops import _index, _pagecache
from llamacache.ops._report import Report
from llamacache.ops.warm_plan import Planner, WarmItem, expand, read_manifest
from llamacache.settings import CacheSettings

Progress = Callable[[int, int | None], None]
BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class WarmedFile:
    source: Path
    key: str
    bytes: int
    action: str  # "stored", "skipped" (already cached), "over-budget", "planned" (dry run)


@dataclass(frozen=True)
class PageCacheReport:
    available: bool  # False: residency could not be measured (no mincore)
    total_bytes: int
    resident_before: int | None
    resident_after: int | None
    reason: str | None = None


@dataclass(frozen=True)
class WarmReport(Report):
    schema = "warm"
    cache: str
    dry_run: bool
    files: int  # stored (or planned, in a dry run)
    bytes: int
    skipped: int
    skipped_bytes: int
    over_budget: int
    over_budget_bytes: int
    budget: int
    stopped_at_budget: bool
    seconds: float
    bytes_per_second: float  # bytes stored / seconds
    models: tuple[str, ...]  # model@revision made complete (model caches)
    items: tuple[WarmedFile, ...]
    page_cache: PageCacheReport | None = None


class _Counting:
    """A source file that reports bytes read (progress across reader threads)."""

    def __init__(self, path: Path, tick: Callable[[int], None]) -> None:
        try:
            self._f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise CacheIOError(f"cannot read {path}: {exc.strerror or exc}") from None
        if hasattr(os, "posix_fadvise"):  # larger readahead for one sequential pass
            os.posix_fadvise(self._f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._tick = tick

    def readinto(self, buf: Any) -> int:
        n = self._f.readinto(buf) or 0
        if n:
            self._tick(n)
        return n

    def close(self) -> None:
        self._f.close()


def _stored_meta(tag: bytes | None, path: Path | None) -> framing.EntryMeta | None:
    """The header of a cached raw file whose value file exists, else None."""
    if not tag or path is None or not path.exists():
        return None
    try:
        meta = framing.parse_meta(tag)
    except ValueError:
        return None
    return meta if meta.kind == "rawfile" else None


def _matches(meta: framing.EntryMeta | None, item: WarmItem, src: _Counting) -> bool:
    """Same size and same checksum as the cached raw file (reads the source once)."""
    if meta is None or meta.raw_len != item.size:
        return False
    hasher = checksums.BY_NAME[meta.checksum].new()
    buf = bytearray(BLOCK)
    while n := src.readinto(buf):
        hasher.update(memoryview(buf)[:n])
    return bool(hasher.digest() == meta.digest)


class _Run:
    """State shared by reader threads: budget reservations, progress, results."""

    def __init__(self, cache: TieredCache, budget: int, total: int, progress: Progress) -> None:
        self.cache, self.budget, self.total, self.progress = cache, budget, total, progress
        self.lock = threading.Lock()
        self.used = cache.disk.used_bytes()
        self.done = 0
        self.stopped = False
        self.metas: dict[str, framing.EntryMeta] = {}
        self.unmarked: set[tuple[str, str]] = set()
        self.source_locks: dict[str, threading.Lock] = {}
        self.by_source: dict[str, framing.EntryMeta] = {}  # model files stored or found
        self.sizes: set[int] | None = None  # sizes of the files cached revisions list

    def tick(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        self.progress(done, self.total)

    def reserve(self, size: int) -> bool:
        with self.lock:
            if self.stopped or self.used + size > self.budget:
                self.stopped = True
                return False
            self.used += size
            return True

    def one_blob(self, item: WarmItem, model: str, revision: str, rel: str) -> WarmedFile:
        """A model file, stored once as a blob. The same source twice in one run (hub
        revisions sharing a blob) is stored once; a file whose size some cached revision
        lists is hashed first (one read) and skipped when its blob is there; any other file
        is copied and hashed in one pass, then named after its digest."""
        source = os.path.realpath(item.source)
        with self.lock:
            source_lock = self.source_locks.setdefault(source, threading.Lock())
            if self.sizes is None:
                self.sizes = {f.size for f in M.listed_files(self.cache)}
            maybe_cached = item.size in self.sizes
        with source_lock:
            meta = self.by_source.get(source)
            digest = None
            if meta is None and maybe_cached:
                src = _Counting(item.source, self.tick)
                try:
                    digest, size = M.hash_source(src, self.cache.settings.checksum)
                finally:
                    src.close()
                meta = M.find_blob(self.cache, rel, digest, size)
            if meta is not None and meta.raw_len == item.size:
                action = "skipped"
            else:
                if not self.reserve(item.size):
                    return WarmedFile(item.source, item.key, item.size, "over-budget")
                self.unmark(model, revision)
                src = _Counting(item.source, self.tick if digest is None else lambda n: None)
                try:
                    meta = M.store_blob(self.cache, rel, src)[0]
                finally:
                    src.close()
                action = "stored"
            with self.lock:
                self.by_source[source] = meta
                self.metas[item.key] = meta
        return WarmedFile(item.source, item.key, item.size, action)

    def unmark(self, model: str, revision: str) -> None:
        """Before a revision's first changed file: drop its manifest (it is incomplete now).

        A revision whose files are all skipped keeps its manifest, so an interrupted
        re-warm does not make a complete model look missing.
        """
        with self.lock:
            if (model, revision) in self.unmarked:
                return
            self.unmarked.add((model, revision))
        self.cache.remove(M.manifest_key(model, revision))

    def one(self, item: WarmItem) -> WarmedFile:
        if self.stopped:
            return WarmedFile(item.source, item.key, item.size, "over-budget")
        if item.model is not None and item.revision is not None and item.relpath:
            return self.one_blob(item, item.model, item.revision, item.relpath)
        # the index row only (describe): comparing is not a read, so no hit and no recency
        found = self.cache.disk.describe(item.key)
        meta = None if found is None else _stored_meta(found.meta, found.path)
        src = _Counting(item.source, self.tick)
        try:
            if meta is not None and _matches(meta, item, src):
                with self.lock:
                    self.metas[item.key] = meta
                return WarmedFile(item.source, item.key, item.size, "skipped")
        finally:
            src.close()
        if not self.reserve(item.size):
            return WarmedFile(item.source, item.key, item.size, "over-budget")
        if item.model is not None and item.revision is not None:
            self.unmark(item.model, item.revision)
        src = _Counting(item.source, self.tick)
        try:
            meta = self.cache.put_file(item.key, src)  # type: ignore[arg-type]
        finally:
            src.close()
        with self.lock:
            self.metas[item.key] = meta
        return WarmedFile(item.source, item.key, item.size, "stored")


def plan(
    manager: CacheManager,
    cache: str,
    sources: Sequence[str],
    manifests: Sequence[Path] = (),
    *,
    revision: str | None = None,
    name: str | None = None,
) -> list[WarmItem]:
    """The items a warm would store, in order; UsageError for a bad or unsafe source."""
    settings = manager.settings.cache(cache)
    if not sources and not manifests:
        raise UsageError("warm needs at least one SOURCE or --manifest PATH")
    planner = Planner(settings.format == "safetensors", revision, name)
    for arg in sources:
        for path in expand(arg):
            planner.add_path(path, named=os.path.lexists(arg))  # named, not a glob's match
    for manifest in manifests:
        base = Path(os.path.abspath(manifest)).parent
        for entry in read_manifest(manifest):
            for path in expand(entry, base):
                planner.add_path(path)
    items = list(planner.items.values())
    _check_format(settings.format, items)
    return items


def _check_format(fmt: str | None, items: list[WarmItem]) -> None:
    """UsageError for a file whose name claims the cache's format but is not (verify's rule).

    Reads only each such file's header, before anything is stored.
    """
    validator = VALIDATORS.get(fmt or "")
    if validator is None:
        return
    for item in items:
        if item.key.endswith(f".{fmt}"):
            problem = validator(item.source)
            if problem is not None:
                raise UsageError(f"{item.source}: not a valid {fmt} file: {problem}")


def _dry_run(
    settings: CacheSettings, items: list[WarmItem], limit: int, progress: Progress
) -> dict[str, WarmedFile]:
    """What a real run would do, decided as it decides (size + checksum, budget), writing
    nothing: the index is read read-only and a cache that does not exist stays absent."""
    path = settings.path
    metas: dict[str, framing.EntryMeta | None] = {}
    used = 0
    total, done = sum(i.size for i in items), 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    blobs = _blob_keys(settings, items, tick)  # model files: the blob each would use
    if (path / _index.DB_NAME).exists():
        con, _ = _index.connect(path, cache=settings.name)
        try:
            used = _index.used_bytes(con)
            now = time.time()
            for item in items:
                row = con.execute(
                    "SELECT tag, filename FROM Cache WHERE key = ? AND raw = 1"
                    " AND (expire_time IS NULL OR expire_time > ?)",
                    (blobs[item.key][0] if item.key in blobs else item.key, now),
                ).fetchone()
                tag, filename = row if row is not None else (None, None)
                metas[item.key] = _stored_meta(tag, path / filename if filename else None)
        finally:
            con.close()
    results: dict[str, WarmedFile] = {}
    stopped = False
    planned: set[str] = set()  # blobs this run would store: a second copy is a skip
    for item in items:
        meta = metas.get(item.key)
        if item.key in blobs:
            bkey, digest = blobs[item.key]
            stored = meta is not None and meta.digest == digest and meta.raw_len == item.size
            if stored or bkey in planned:
                results[item.key] = WarmedFile(item.source, item.key, item.size, "skipped")
                continue
            planned.add(bkey)
            meta = None
        if meta is not None and meta.raw_len == item.size:
            src = _Counting(item.source, tick)
            try:
                if _matches(meta, item, src):
                    results[item.key] = WarmedFile(item.source, item.key, item.size, "skipped")
                    continue
            finally:
                src.close()
        if stopped or used + item.size > limit:
            stopped = True
            results[item.key] = WarmedFile(item.source, item.key, item.size, "over-budget")
        else:
            used += item.size
            results[item.key] = WarmedFile(item.source, item.key, item.size, "planned")
    return results


def _blob_keys(
    settings: CacheSettings, items: list[WarmItem], tick: Callable[[int], None]
) -> dict[str, tuple[str, bytes]]:
    """``{item key: (blob key, digest)}`` for model files (reads each once to hash it)."""
    out: dict[str, tuple[str, bytes]] = {}
    for item in items:
        if item.model is not None and item.relpath:
            src = _Counting(item.source, tick)
            try:
                digest, _ = M.hash_source(src, settings.checksum)
            finally:
                src.close()
            out[item.key] = (M.blob_key(settings.checksum, digest.hex(), item.relpath), digest)
    return out


def _complete_models(
    cache: TieredCache, items: list[WarmItem], results: dict[str, WarmedFile], run: _Run
) -> list[str]:
    groups: dict[tuple[str, str], list[WarmItem]] = {}
    for item in items:
        if item.model is not None and item.revision is not None:
            groups.setdefault((item.model, item.revision), []).append(item)
    done: list[str] = []
    for (model, rev), group in groups.items():
        if any(results[i.key].action not in ("stored", "skipped") for i in group):
            continue  # incomplete: its manifest stays absent
        files: dict[str, Any] = {}
        if not any(i.replace for i in group):
            old = M.read_manifest(cache, model, rev)
            files.update({f.path: f for f in old.files} if old else {})
        files.update({i.relpath: run.metas[i.key] for i in group if i.relpath})
        M.write_manifest(cache, model, rev, files)
        for ref in sorted({r for i in group for r in i.refs}):  # after the manifest
            M.write_ref(cache, model, ref, rev)
        done.append(f"{model}@{rev}")
    return done


def warm(
    manager: CacheManager,
    cache: str = "model",
    sources: Sequence[str] = (),
    manifests: Sequence[Path] = (),
    *,
    revision: str | None = None,
    name: str | None = None,
    page_cache: bool = False,
    budget: int | None = None,
    jobs: int = 1,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> WarmReport:
    """Store every planned file (``jobs`` parallel readers) up to ``budget`` bytes of cache use.

    ``budget`` defaults to the cache's own limit (eviction_threshold x size) so warming never
    evicts what it just stored. Costs one sequential read of each source (+ one write for
    files not already cached) and, with ``page_cache``, one more read of the cached files.
    """
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: expected 1 or more")
    items = plan(manager, cache, sources, manifests, revision=revision, name=name)
    s = manager.settings.cache(cache)
    limit = budget if budget is not None else int(s.eviction_threshold * s.disk_size)
    total = sum(i.size for i in items)
    report = progress or (lambda done, total: None)
    started = time.perf_counter()
    models: list[str] = []
    if dry_run:
        results = _dry_run(s, items, limit, report)
    else:
        tiered = manager.cache(cache)
        run = _Run(tiered, limit, total, report)
        if jobs == 1:
            results = {i.key: run.one(i) for i in items}
        else:
            with ThreadPoolExecutor(jobs, thread_name_prefix="llamacache-warm") as pool:
                results = {r.key: r for r in pool.map(run.one, items)}
        models = _complete_models(tiered, items, results, run)
    seconds = time.perf_counter() - started
    out = [results[i.key] for i in items]
    stored = [r for r in out if r.action in ("stored", "planned")]
    skipped = [r for r in out if r.action == "skipped"]
    over = [r for r in out if r.action == "over-budget"]
    pc = None
    if page_cache and not dry_run:
        done_keys = [
            _stored_key(i, run.metas)
            for i, r in zip(items, out, strict=True)
            if r.action in ("stored", "skipped")
        ]
        pc = _warm_page_cache(manager.cache(cache), sorted(set(done_keys)))
    stored_bytes = sum(r.bytes for r in stored)
    return WarmReport(
        cache=cache,
        dry_run=dry_run,
        files=len(stored),
        bytes=stored_bytes,
        skipped=len(skipped),
        skipped_bytes=sum(r.bytes for r in skipped),
        over_budget=len(over),
        over_budget_bytes=sum(r.bytes for r in over),
        budget=limit,
        stopped_at_budget=bool(over),
        seconds=seconds,
        bytes_per_second=stored_bytes / seconds if seconds > 0 and not dry_run else 0.0,
        models=tuple(models),
        items=tuple(out),
        page_cache=pc,
    )


def _stored_key(item: WarmItem, metas: dict[str, framing.EntryMeta]) -> str:
    """The key holding an item's bytes: a model file's blob, else the item's own key."""
    meta = metas.get(item.key)
    if item.model is None or not item.relpath or meta is None:
        return item.key
    return M.blob_key(meta.checksum, meta.digest.hex(), item.relpath)


def _warm_page_cache(cache: TieredCache, keys: list[str]) -> PageCacheReport:
    paths = [p for k in keys if (p := cache.get_path(k)) is not None]
    total = sum(p.stat().st_size for p in paths)
    before = _pagecache.residency(paths)
    _pagecache.touch(paths)
    after = _pagecache.residency(paths)
    return PageCacheReport(
        available=after is not None,
        total_bytes=total,
        resident_before=before,
        resident_after=after,
        reason=_pagecache.UNAVAILABLE_REASON,
    )
