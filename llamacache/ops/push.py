"""`push`: upload what the shared tiers (Redis, the object store) lack, from this disk tier.

After a FLUSHDB, a Redis restart, TTL expiry or eviction, local copies are all that is
left; a put only shares at write time. ``push`` compares every chosen entry with the
shared record (a small read of its header) and uploads only the ones the server lacks:
an entry someone removed (a deletion mark) or replaced with other content is left alone,
so a push never resurrects a delete or overwrites a newer value.

Model manifests (``model@rev/.manifest.json``) go last and only when every file they list
is on the shared tier with the same digest: another machine must never see a revision as
complete when a file of it is missing. A value over ``max_value_size`` cannot be shared;
it is reported (a warning, a count, exit status 1), and so is its model's manifest.

With both shared tiers configured each entry goes to every tier that takes it (Redis: small
values; the object store: large values, files and model manifests); a file counts as shared
when one of them holds it. The object store keeps no deletion marks: a key removed there
and still on this disk is uploaded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llamacache.engine import unshared
from llamacache.engine.objectstore import ObjectTier, stored_len
from llamacache.engine.protocol import ABSENT, DELETED, SharedTier
from llamacache.errors import ExitCode, OptionError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops._common import targets
from llamacache.ops._report import Report

Progress = Callable[[int, int], None]
_MANIFEST_SUFFIX = "/.manifest.json"


@dataclass(frozen=True)
class CachePush:
    """What push did for one cache."""

    name: str
    checked: int  # entries compared with the shared tier
    pushed: int  # uploaded now
    pushed_bytes: int
    present: int  # already there with the same content
    differs: int  # the shared tier holds other content for the key: left alone
    deleted: int  # removed on the shared tier by someone (a deletion mark): left alone
    kept_local: int  # pickled values without a signing key: never shared
    too_large: tuple[str, ...]  # over max_value_size: cannot be shared
    held: tuple[str, ...]  # model manifests not published: a file of theirs is not shared
    failed: tuple[str, ...]  # the server refused or went away
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PushReport(Report):
    schema: ClassVar[str] = "push"

    caches: tuple[CachePush, ...]
    seconds: float

    @property
    def exit_code(self) -> ExitCode:
        """1 when something could not be shared (too large, failed, a manifest held)."""
        problem = any(c.too_large or c.failed or c.held for c in self.caches)
        return ExitCode.PROBLEM if problem else ExitCode.OK


def push(
    manager: CacheManager,
    keys: Sequence[str] = (),
    *,
    cache: str | None = None,
    all_keys: bool = False,
    progress: Progress | None = None,
) -> PushReport:
    """Upload the chosen entries (``keys``, or every entry with ``all_keys``) the shared
    tier lacks. UsageError without a network tier, or with neither keys nor all_keys."""
    if not keys and not all_keys:
        raise OptionError(None, "push: name KEYS to push, or all_keys", also=("all_keys",))
    if keys and all_keys:
        raise OptionError(None, "push: give KEYS or all_keys, not both", also=("all_keys",))
    net, obj = manager.settings.network, manager.settings.object_store
    if net is None and obj is None:
        raise UsageError(
            "push: no shared tier is configured (set cache.network.url or cache.object.url)"
        )
    t0 = time.monotonic()
    out = []
    for s in targets(manager, cache):
        if (s.network and net is not None) or (s.object and obj is not None):
            out.append(_push_one(manager, s.name, keys, progress))
    return PushReport(caches=tuple(out), seconds=time.monotonic() - t0)


class _Tally:
    def __init__(self) -> None:
        self.checked = self.pushed = self.pushed_bytes = self.present = 0
        self.differs = self.deleted = self.kept_local = 0
        self.too_large: list[str] = []
        self.failed: list[str] = []
        self.held: list[str] = []


def _push_one(
    manager: CacheManager, name: str, keys: Sequence[str], progress: Progress | None
) -> CachePush:
    tiered = manager.cache(name)
    tiers: list[Any] = [t for t in tiered.lower if isinstance(t, SharedTier | ObjectTier)]
    if not tiers:
        raise UsageError(f"push: cache {name!r} has no shared tier")
    chosen: list[Hashable] = list(keys) if keys else list(tiered.keys())
    files = [k for k in chosen if not _is_manifest(k)]
    manifests = [k for k in chosen if _is_manifest(k)]
    t = _Tally()
    total = len(chosen)
    for i, key in enumerate(files, 1):
        _push_entry(tiered, tiers, key, t)
        if progress is not None:
            progress(i, total)
    for i, key in enumerate(manifests, len(files) + 1):
        if _files_shared(tiered, tiers, str(key)):
            _push_entry(tiered, tiers, key, t)
        else:
            t.held.append(str(key))
        if progress is not None:
            progress(i, total)
    warnings = [
        f"cache {name!r}: {k!r} is larger than cache.network.max_value_size: not shared"
        for k in t.too_large
    ]
    warnings += [
        f"cache {name!r}: manifest {k!r} not published: a file of that revision is not on "
        "the shared tier"
        for k in t.held
    ]
    return CachePush(
        name,
        t.checked,
        t.pushed,
        t.pushed_bytes,
        t.present,
        t.differs,
        t.deleted,
        t.kept_local,
        tuple(t.too_large),
        tuple(t.held),
        tuple(t.failed),
        tuple(warnings),
    )


def _is_manifest(key: Hashable) -> bool:
    return isinstance(key, str) and key.endswith(_MANIFEST_SUFFIX)


def _takes(tier: Any, key: Hashable, meta: bytes) -> bool:
    """True when ``tier`` is where this entry belongs (and it may write there)."""
    if isinstance(tier, ObjectTier):
        return tier.takes_meta(key, meta)
    return bool(tier.shareable(meta))


def _push_entry(tiered: Any, tiers: list[Any], key: Hashable, t: _Tally) -> None:
    found = tiered.disk.locate(key)
    if found is None:
        return
    meta, path, inline = found
    t.checked += 1
    takers = [tier for tier in tiers if _takes(tier, key, meta)]
    if not takers:
        if any(isinstance(n, SharedTier) and n.too_large(meta) for n in tiers):  # type: ignore[attr-defined]
            t.too_large.append(str(key))
        else:
            t.kept_local += 1
        return
    outcomes = {_push_to(tier, key, meta, path, inline) for tier in takers}
    if "failed" in outcomes:
        t.failed.append(str(key))
        return
    for outcome in ("pushed", "deleted", "differs", "same"):
        if outcome in outcomes:
            break
    if outcome == "pushed":
        t.pushed += 1
        t.pushed_bytes += stored_len(meta)
    t.present += outcome == "same"
    t.differs += outcome == "differs"
    t.deleted += outcome == "deleted"
    if outcome in ("pushed", "same"):
        unshared.forget(tiered.disk.directory, key)


def _push_to(tier: Any, key: Hashable, meta: bytes, path: Any, inline: bytes | None) -> str:
    """Upload one entry to one tier if it lacks it: pushed, same, differs, deleted, failed."""
    verdict = tier.compare(key, meta)
    if verdict in ("same", "differs"):
        return str(verdict)
    if verdict == DELETED:
        return "deleted"
    if verdict != ABSENT:
        return "failed"
    return "pushed" if tier.put_stored(key, meta, path, inline, only_if_absent=True) else "failed"


def _files_shared(tiered: Any, tiers: list[Any], manifest: str) -> bool:
    """Every file the manifest lists is on a shared tier with the listed digest, under the
    key the row names (a blob, or an old row's per-revision entry): the key a reader uses."""
    from llamacache.ml.model import read_manifest

    base = manifest[: -len(_MANIFEST_SUFFIX)]
    name, _, revision = base.rpartition("@")
    try:
        info = read_manifest(tiered, name, revision)
    except Exception:  # a damaged manifest is not published
        return False
    if info is None:
        return False
    return all(
        any(tier.shared_digest(info.key(f)) == f.digest for tier in tiers) for f in info.files
    )
