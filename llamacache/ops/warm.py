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
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamacache.config.schema import cache_env
from llamacache.config.settings import CacheSettings
from llamacache.engine import EntryMeta, checksums, index
from llamacache.engine.tiered import TieredCache
from llamacache.errors import CacheIOError, ExitCode, OptionError, UsageError
from llamacache.formats import VALIDATORS
from llamacache.manager import CacheManager
from llamacache.ml import revisions
from llamacache.ops import _pagecache
from llamacache.ops._report import Report
from llamacache.ops.warm_plan import Planner, WarmItem, expand, read_manifest

if TYPE_CHECKING:  # ops.push is loaded only by --share
    from llamacache.ops.push import CachePush

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
    # why it stopped: the bytes the run had to store and the room it had under ``budget``
    needed_bytes: int = 0
    room_bytes: int = 0
    limit_setting: str = ""  # the setting that sizes the cache, e.g. "caches.model.size"
    limit_env: str = ""  # and its environment variable, e.g. "LLAMACACHE_MODEL_SIZE"
    budget_given: bool = False  # True: --budget (lower than the cache's limit) bound the run
    shared: CachePush | None = None  # --share: what was uploaded to the shared tier

    @property
    def share_failed(self) -> bool:
        """--share could not share everything (too large, refused, a manifest held)."""
        c = self.shared
        return c is not None and bool(c.too_large or c.failed or c.held)

    @property
    def exit_code(self) -> ExitCode:
        """1 when the run stopped at its budget or --share could not share everything."""
        return ExitCode.PROBLEM if self.stopped_at_budget or self.share_failed else ExitCode.OK


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


def _matches(meta: EntryMeta | None, item: WarmItem, src: _Counting) -> bool:
    """Same size and same checksum as the cached raw file (reads the source once)."""
    if meta is None or meta.raw_len != item.size:
        return False
    hasher = checksums.BY_NAME[meta.checksum].new()
    buf = bytearray(BLOCK)
    while n := src.readinto(buf):
        hasher.update(memoryview(buf)[:n])
    return bool(hasher.digest() == meta.digest)


class _Run:
    """State shared by reader threads: progress, checksums of stored files, results."""

    def __init__(self, cache: TieredCache, total: int, progress: Progress) -> None:
        self.cache, self.total, self.progress = cache, total, progress
        self.lock = threading.Lock()
        self.used = cache.disk.used_bytes()
        self.done = 0
        self.metas: dict[str, EntryMeta] = {}
        self.unmarked: set[tuple[str, str]] = set()
        self.sizes: set[int] | None = None  # sizes of the files cached revisions list

    def tick(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        self.progress(done, self.total)

    def unmark(self, model: str, revision: str) -> None:
        """Before a revision's first changed file: drop its manifest (it is incomplete now).

        A revision whose files are all skipped keeps its manifest, so an interrupted
        re-warm does not make a complete model look missing.
        """
        with self.lock:
            if (model, revision) in self.unmarked:
                return
            self.unmarked.add((model, revision))
        self.cache.remove(revisions.manifest_key(model, revision))

    def check_blob(self, item: WarmItem, rel: str) -> WarmedFile | None:
        """A "skipped" result when the cache holds a model file's bytes as a blob. Only a
        file of a size some cached revision lists is hashed (one read, no hit recorded);
        any other cannot be cached and is left to ``store``'s single pass."""
        with self.lock:
            if self.sizes is None:
                self.sizes = {f.size for f in revisions.listed_files(self.cache)}
            maybe = item.size in self.sizes
        if not maybe:
            return None
        src = _Counting(item.source, self.tick)
        try:
            digest, size = revisions.hash_source(src, self.cache.settings.checksum)
        finally:
            src.close()
        meta = revisions.find_blob(self.cache, rel, digest, size)
        if meta is None:
            return None
        with self.lock:
            self.metas[item.key] = meta
        return WarmedFile(item.source, item.key, item.size, "skipped")

    def check(self, item: WarmItem) -> WarmedFile | None:
        """A "skipped" result when the cache already holds these bytes under the key."""
        if item.model is not None and item.relpath:
            return self.check_blob(item, item.relpath)
        # the index row only (describe): comparing is not a read, so no hit and no recency
        found = self.cache.disk.describe(item.key)
        meta = None if found is None else index.rawfile_meta(found.meta, found.path)
        if meta is None or meta.raw_len != item.size:
            return None
        src = _Counting(item.source, self.tick)
        try:
            if _matches(meta, item, src):
                with self.lock:
                    self.metas[item.key] = meta
                return WarmedFile(item.source, item.key, item.size, "skipped")
        finally:
            src.close()
        return None

    def store(self, item: WarmItem) -> WarmedFile:
        if item.model is not None and item.revision is not None:
            self.unmark(item.model, item.revision)
        src = _Counting(item.source, self.tick)
        try:
            if item.model is not None and item.relpath:  # one pass, named after its digest
                meta = revisions.store_blob(self.cache, item.relpath, src)[0]
            else:
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
        raise OptionError(
            None, "warm needs at least one SOURCE or manifest PATH", also=("manifest",)
        )
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
) -> tuple[dict[str, WarmedFile], int]:
    """What a real run would do, decided as it decides (size + checksum, budget), writing
    nothing: the index is read read-only and a cache that does not exist stays absent."""
    path = settings.path
    metas: dict[str, EntryMeta | None] = {}
    used = 0
    total, done = sum(i.size for i in items), 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    blobs = _blob_keys(settings, items, tick)  # model files: the blob each would use
    if index.exists(path):
        with index.Snapshot(path, cache=settings.name) as snap:
            used = snap.index_bytes()
            now = time.time()
            for item in items:
                found = snap.lookup(blobs[item.key][0] if item.key in blobs else item.key, now)
                metas[item.key] = None if found is None else index.rawfile_meta(*found)
    results: dict[str, WarmedFile] = {}
    todo: list[WarmItem] = []
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
        todo.append(item)
    results.update(_decide(todo, used, limit, "planned"))
    return results, used


def _blob_keys(
    settings: CacheSettings, items: list[WarmItem], tick: Callable[[int], None]
) -> dict[str, tuple[str, bytes]]:
    """``{item key: (blob key, digest)}`` for model files (reads each once to hash it)."""
    out: dict[str, tuple[str, bytes]] = {}
    for item in items:
        if item.model is not None and item.relpath:
            src = _Counting(item.source, tick)
            try:
                digest, _ = revisions.hash_source(src, settings.checksum)
            finally:
                src.close()
            out[item.key] = (
                revisions.blob_key(settings.checksum, digest.hex(), item.relpath),
                digest,
            )
    return out


def _same_bytes(todo: list[WarmItem]) -> tuple[list[WarmItem], dict[str, WarmItem]]:
    """``todo`` without model files whose source another item stores (hub revisions share
    blobs), and ``{left-out key: the item that stores its bytes}``."""
    first: dict[tuple[str, str], WarmItem] = {}
    dups: dict[str, WarmItem] = {}
    keep: list[WarmItem] = []
    for i in todo:
        if i.model is not None and i.relpath:
            ident = (os.path.realpath(i.source), revisions.blob_key("", "", i.relpath))  # + suffix
            if ident in first:
                dups[i.key] = first[ident]
                continue
            first[ident] = i
        keep.append(i)
    return keep, dups


def _decide(todo: list[WarmItem], used: int, limit: int, action: str) -> dict[str, WarmedFile]:
    """All of ``todo`` as ``action`` when it fits under ``limit``, else all "over-budget".

    All or nothing: storing part of a run that does not fit would either stop halfway or,
    past the cache's limit, evict files this very run (or an earlier warm) was asked to keep.
    """
    fits = used + sum(i.size for i in todo) <= limit
    verdict = action if fits else "over-budget"
    return {i.key: WarmedFile(i.source, i.key, i.size, verdict) for i in todo}


def _complete_models(
    cache: TieredCache,
    items: list[WarmItem],
    results: dict[str, WarmedFile],
    run: _Run,
    unshared: Collection[str] = (),
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
            old = revisions.read_manifest(cache, model, rev)
            files.update({f.path: f for f in old.files} if old else {})
        files.update({i.relpath: run.metas[i.key] for i in group if i.relpath})
        local = any(_stored_key(i, run.metas) in unshared for i in group)
        revisions.write_manifest(cache, model, rev, files, share=not local)
        for ref in sorted({r for i in group for r in i.refs}):  # after the manifest
            revisions.write_ref(cache, model, ref, rev)
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
    share: bool = False,
    progress: Progress | None = None,
) -> WarmReport:
    """Store every planned file (``jobs`` parallel readers) if they all fit, else none.

    The room is the cache's own limit (eviction_threshold x size), lowered by ``budget``
    (a budget can never raise it): a warm never evicts, so it never destroys a model it was
    asked to keep. When the files not already cached do not fit, nothing is stored and the
    report says how much was needed and which setting sizes the cache. Costs one read of
    each source already cached at the same size, one read + one write of every other file
    and, with ``page_cache``, one more read of the cached files.

    ``share`` then uploads what the shared tier lacks of the warmed entries (``ops.push``:
    files first, a manifest only once all its files are shared, refs after their manifest).
    """
    if jobs < 1:
        raise OptionError("jobs", "expected 1 or more", value=str(jobs))
    if any(str(src).startswith("s3://") for src in sources):
        if not all(str(src).startswith("s3://") for src in sources) or manifests or share:
            raise OptionError(
                "sources",
                "an s3:// model is imported by itself (no local paths, manifests or share)",
                also=("manifests", "share"),
            )
        if dry_run:
            raise OptionError("dry_run", "not supported with an s3:// model")
        from llamacache.ops.object_import import import_models

        return import_models(manager, cache, sources, revision=revision, progress=progress)
    if share and manager.settings.network is None and manager.settings.object_store is None:
        raise OptionError(
            "share", "no shared tier is configured (set cache.network.url or cache.object.url)"
        )
    items = plan(manager, cache, sources, manifests, revision=revision, name=name)
    s = manager.settings.cache(cache)
    cache_limit = index.disk_limit(s)
    limit = cache_limit if budget is None else min(budget, cache_limit)
    total = sum(i.size for i in items)
    report = progress or (lambda done, total: None)
    started = time.perf_counter()
    models: list[str] = []
    if dry_run:
        results, used = _dry_run(s, items, limit, report)
    else:
        tiered = manager.cache(cache)
        run = _Run(tiered, total, report)
        used = run.used
        with ThreadPoolExecutor(jobs, thread_name_prefix="llamacache-warm") as pool:
            checked = list(pool.map(run.check, items))
            results = {c.key: c for c in checked if c is not None}
            todo = [i for i, c in zip(items, checked, strict=True) if c is None]
            todo, dups = _same_bytes(todo)
            results.update(_decide(todo, used, limit, "stored"))
            to_store = [i for i in todo if results[i.key].action == "stored"]
            results.update({r.key: r for r in pool.map(run.store, to_store)})
            by_key = {i.key: i for i in items}
            for key, orig in dups.items():  # stored once, by ``orig``
                stored_once = results[orig.key].action == "stored"
                if stored_once:
                    run.metas[key] = run.metas[orig.key]
                action = "skipped" if stored_once else results[orig.key].action
                results[key] = WarmedFile(by_key[key].source, key, by_key[key].size, action)
        files_pushed = None
        if share:  # files first: a manifest must never reach the server before its files
            out = [results[i.key] for i in items]
            files_pushed = _push(manager, cache, _warmed_keys(items, out, run.metas))
        unshared = set(files_pushed.too_large + files_pushed.failed) if files_pushed else set()
        models = _complete_models(tiered, items, results, run, unshared)
    seconds = time.perf_counter() - started
    out = [results[i.key] for i in items]
    stored = [r for r in out if r.action in ("stored", "planned")]
    skipped = [r for r in out if r.action == "skipped"]
    over = [r for r in out if r.action == "over-budget"]
    pc = None
    if page_cache and not dry_run:
        kept = [(i, r) for i, r in zip(items, out, strict=True) if r.action != "over-budget"]
        keys = {_stored_key(i, run.metas) for i, r in kept if r.action in ("stored", "skipped")}
        pc = _warm_page_cache(manager.cache(cache), sorted(keys))
    shared = None
    if share and not dry_run:
        shared = _share_models(manager, cache, items, out, models, files_pushed, run.metas)
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
        needed_bytes=sum(r.bytes for r in out if r.action != "skipped"),
        room_bytes=max(0, limit - used),
        limit_setting=f"caches.{cache}.size",
        limit_env=cache_env(cache, "size"),
        budget_given=budget is not None and budget < cache_limit,
        shared=shared,
    )


def _warmed_keys(items: list[WarmItem], out: list[WarmedFile], metas: dict[str, Any]) -> set[str]:
    """The keys holding the bytes of every file this warm stored or found cached."""
    kept = zip(items, out, strict=True)
    return {_stored_key(i, metas) for i, r in kept if r.action in ("stored", "skipped")}


def _push(manager: CacheManager, cache: str, keys: set[str]) -> CachePush | None:
    from llamacache.ops import push as ops_push

    if not keys:
        return None
    done = ops_push.push(manager, sorted(keys), cache=cache).caches
    return done[0] if done else None


def _share_models(
    manager: CacheManager,
    cache: str,
    items: list[WarmItem],
    out: list[WarmedFile],
    models: list[str],
    files: CachePush | None,
    metas: dict[str, EntryMeta],
) -> CachePush | None:
    """After the files: the completed manifests (push checks every file is shared), then
    the refs of the revisions whose manifest is on the shared tier."""
    kept = [i for i, r in zip(items, out, strict=True) if r.action in ("stored", "skipped")]
    pairs = {(i.model, i.revision) for i in kept if i.model and i.revision}
    manifests = {revisions.manifest_key(m, r) for m, r in pairs if f"{m}@{r}" in models}
    held = {revisions.manifest_key(m, r) for m, r in pairs if f"{m}@{r}" not in models}
    one = _push(manager, cache, manifests)
    held |= set(one.held) if one else set()
    refs = {
        revisions.ref_key(i.model, ref)
        for i in kept
        if i.model and i.revision and revisions.manifest_key(i.model, i.revision) not in held
        for ref in i.refs
    }
    for more in (_push(manager, cache, refs), files):
        if more is not None:
            one = more if one is None else _merged(one, more)
    if one is None:
        return None
    return _name_sources(one, {_stored_key(i, metas): i.source for i in kept})


def _name_sources(done: CachePush, sources: dict[str, Path]) -> CachePush:
    """Warnings that name the source file too, not only the blob key holding its bytes."""
    import dataclasses

    warnings = []
    for w in done.warnings:
        for key, src in sources.items():
            w = w.replace(repr(key), f"{key!r} ({src})")
        warnings.append(w)
    return dataclasses.replace(done, warnings=tuple(warnings))


def _merged(a: CachePush, b: CachePush) -> CachePush:
    """One cache's two push passes as one result."""
    from llamacache.ops.push import CachePush

    return CachePush(
        a.name,
        a.checked + b.checked,
        a.pushed + b.pushed,
        a.pushed_bytes + b.pushed_bytes,
        a.present + b.present,
        a.differs + b.differs,
        a.deleted + b.deleted,
        a.kept_local + b.kept_local,
        a.too_large + b.too_large,
        a.held + b.held,
        a.failed + b.failed,
        a.warnings + b.warnings,
    )


def _stored_key(item: WarmItem, metas: dict[str, EntryMeta]) -> str:
    """The key holding an item's bytes: a model file's blob, else the item's own key."""
    meta = metas.get(item.key)
    if item.model is None or not item.relpath or meta is None:
        return item.key
    return revisions.blob_key(meta.checksum, meta.digest.hex(), item.relpath)


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
