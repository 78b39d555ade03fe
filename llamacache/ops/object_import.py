"""``warm s3://bucket/prefix/model``: import a model someone shared through an object store.

The URL names a store (``s3://bucket/prefix``) and a model in it (``org/name``); where one ends
and the other begins is found by looking for the model's manifest (or ref) at each split,
longest store prefix first. The store is opened read-only with the endpoint, region, path
style and signing key of ``[cache.object]`` (credentials from the usual AWS places), and
every file of the revision is fetched into the local disk tier with parallel ranged GETs,
verified part by part against its signed manifest, before the revision's manifest is
written locally: an interrupted import never leaves a revision that looks complete.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from llamacache.config.redaction import redact_url
from llamacache.engine.objectstore import ObjectTier, split_url
from llamacache.errors import NotCachedError, UsageError
from llamacache.manager import CacheManager
from llamacache.ml.model import ModelCache
from llamacache.ml.revisions import DEFAULT_REVISION, check_revision, manifest_key, ref_key
from llamacache.ops.warm import WarmedFile, WarmReport

Progress = Callable[[int, int | None], None]


def is_store_url(source: str) -> bool:
    """True for a source ``warm`` imports from an object store."""
    return source.startswith("s3://")


def _locate(manager: CacheManager, cache: str, url: str, revision: str) -> tuple[str, str]:
    """``(store url, model name)`` for ``url``: the split whose store holds the model."""
    obj = manager.settings.object_store
    assert obj is not None
    bucket, path = split_url(url)
    parts = [p for p in path.split("/") if p]
    keys = manager.settings.network.keys if manager.settings.network else ()
    for k in range(len(parts) - 1, -1, -1):
        store = "s3://" + "/".join([bucket, *parts[:k]])
        name = "/".join(parts[k:])
        tier = ObjectTier(dataclasses.replace(obj, url=store, mode="read-only"), cache, keys)
        for key in (manifest_key(name, revision), ref_key(name, revision)):
            if tier.has(key):
                return store, name
        if not tier.available():  # unreachable: the tier warned; no point trying more
            break
    raise NotCachedError(f"no model with revision {revision!r} found at {redact_url(url)}")


def import_models(
    manager: CacheManager,
    cache: str,
    urls: Sequence[str],
    *,
    revision: str | None = None,
    progress: Progress | None = None,
) -> WarmReport:
    """Fetch every file of each model revision the URLs name into ``cache``'s disk tier."""
    obj = manager.settings.object_store
    if obj is None:
        raise UsageError(
            "warm s3://...: no object tier is configured; set cache.object.url (its endpoint, "
            "region and path_style are used for the URL given)"
        )
    rev = check_revision(revision or DEFAULT_REVISION)
    started = time.perf_counter()
    items: list[WarmedFile] = []
    models: list[str] = []
    for url in urls:
        store, name = _locate(manager, cache, url, rev)
        settings = dataclasses.replace(
            manager.settings,
            object_store=dataclasses.replace(obj, url=store, mode="read-only"),
            network=None,
        )
        with CacheManager(settings) as reader:
            m = ModelCache(reader, cache)
            resolved = m.resolve(name, rev)
            had_manifest = m.cache.disk.locate(manifest_key(name, resolved)) is not None
            info = m.info(name, rev)
            total, done = info.total_bytes, 0
            for f in info.files:
                key = info.key(f)
                had = m.cache.disk.locate(key) is not None
                if m.cache.get_path(key) is None:
                    if not had_manifest:  # never leave a revision that looks complete
                        m.cache.disk.remove(manifest_key(name, info.revision))
                    raise NotCachedError(
                        f"model {name}@{info.revision}: file {f.path!r} could not be fetched "
                        f"from {redact_url(store)} (missing, damaged or unreachable)"
                    )
                items.append(WarmedFile(Path(f.path), key, f.size, "skipped" if had else "stored"))
                done += f.size
                if progress is not None:
                    progress(done, total)
            models.append(f"{name}@{info.revision}")
    seconds = time.perf_counter() - started
    stored = [i for i in items if i.action == "stored"]
    skipped = [i for i in items if i.action == "skipped"]
    stored_bytes = sum(i.bytes for i in stored)
    return WarmReport(
        cache=cache,
        dry_run=False,
        files=len(stored),
        bytes=stored_bytes,
        skipped=len(skipped),
        skipped_bytes=sum(i.bytes for i in skipped),
        over_budget=0,
        over_budget_bytes=0,
        budget=0,
        stopped_at_budget=False,
        seconds=seconds,
        bytes_per_second=stored_bytes / seconds if seconds > 0 else 0.0,
        models=tuple(models),
        items=tuple(items),
    )
