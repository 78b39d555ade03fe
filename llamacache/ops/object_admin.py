"""Admin work on the object tier (``--tier object``): inspect, ls, verify, evict and clean.

The layout belongs to the engine (``engine/objectstore.py``); this module walks what it lists
and decides what to report. A store that cannot be reached is one line and exit code 1
(``inspect`` reports it as a row instead). Parts are shared by every cache under the prefix:
``clean`` removes only parts no entry of any cache refers to, and only past a grace period
(an upload whose entry record is not written yet has young parts).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from llamacache.config.redaction import redact_url
from llamacache.engine.objectstore import ObjectTier, missing_client
from llamacache.errors import ExitCode, LlamacacheError, OptionError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops._report import Report

Progress = Callable[[int, int | None], None]
CLEAN_GRACE = 86400.0  # parts younger than this may belong to an upload still in flight


def object_caches(manager: CacheManager, cache: str | None) -> list[str]:
    """The named cache, else every configured cache that uses the object tier."""
    if manager.settings.object_store is None:
        raise UsageError("no object tier: set [cache.object] url (or LLAMACACHE_OBJECT_URL)")
    if cache is not None:
        if not manager.settings.cache(cache).object:
            raise UsageError(f"cache {cache!r} does not use the object tier (object = false)")
        return [cache]
    return [n for n in manager.names() if manager.settings.caches[n].object]


def tier_for(manager: CacheManager, cache: str) -> ObjectTier:
    """An ObjectTier for admin use (the cache's own settings and keys)."""
    obj = manager.settings.object_store
    if obj is None:
        raise UsageError("no object tier: set [cache.object] url (or LLAMACACHE_OBJECT_URL)")
    try:
        import obstore  # noqa: F401
    except ImportError as exc:
        raise missing_client(exc) from None
    net = manager.settings.network
    return ObjectTier(obj, cache, net.keys if net is not None else ())


def _failed(tier: ObjectTier, exc: BaseException) -> LlamacacheError:
    from llamacache.engine.objectstore import describe_error

    return LlamacacheError(
        f"cache {tier.cache!r}: object tier {redact_url(tier.url)} {describe_error(exc)}"
    )


# -- inspect ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One cache's share of the store, and the store's parts (shared by every cache)."""

    cache: str
    url: str
    reachable: bool
    error: str | None
    entries: int
    bytes: int  # payload bytes the cache's entries refer to
    parts: int  # parts in the store (every cache's)
    part_bytes: int
    mode: str
    signed: bool
    not_shared: str  # what stays local with this tier alone


@dataclass(frozen=True)
class ObjectInspectReport(Report):
    schema = "inspect-object"
    caches: tuple[ObjectInfo, ...]

    @property
    def exit_code(self) -> ExitCode:
        """1 when the store could not be reached."""
        ok = all(c.reachable for c in self.caches)
        return ExitCode.OK if ok else ExitCode.PROBLEM


def inspect_object(manager: CacheManager, cache: str | None) -> ObjectInspectReport:
    """Entries and bytes per cache, the store's parts, and whether it answers."""
    out = []
    for name in object_caches(manager, cache):
        tier = tier_for(manager, name)
        url = redact_url(tier.url)
        mode = tier.settings.mode
        local = f"values under {tier.threshold:,} B (other than files and model manifests)" + (
            "; they go to the network tier" if manager.settings.network else " stay local"
        )
        error = tier.reachable()
        if error is not None:
            out.append(ObjectInfo(name, url, False, error, 0, 0, 0, 0, mode, False, local))
            continue
        try:
            entries = list(tier.entries())
            parts = list(tier.stored_parts())
        except Exception as exc:
            out.append(ObjectInfo(name, url, False, str(_failed(tier, exc)), 0, 0, 0, 0, mode,
                                  False, local))  # fmt: skip
            continue
        out.append(
            ObjectInfo(
                name,
                url,
                True,
                None,
                len(entries),
                sum(e.bytes for e in entries),
                len(parts),
                sum(p.bytes for p in parts),
                mode,
                tier.signed,
                local,
            )
        )
    return ObjectInspectReport(tuple(out))


# -- ls -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectListEntry:
    cache: str
    key: str
    kind: str
    bytes: int
    stored: str  # "parts" or "inline"
    modified: float


@dataclass(frozen=True)
class ObjectListReport(Report):
    schema = "ls-object"
    entries: tuple[ObjectListEntry, ...]


def list_object(
    manager: CacheManager, cache: str | None, match: str | None = None
) -> ObjectListReport:
    """Every entry record of the chosen caches (``match``: a key glob)."""
    out = []
    for name in object_caches(manager, cache):
        tier = tier_for(manager, name)
        try:
            for e in tier.entries():
                if match is None or fnmatch.fnmatchcase(e.key, match):
                    stored = f"{len(e.parts)} parts" if e.parts else "inline"
                    out.append(ObjectListEntry(name, e.key, e.kind, e.bytes, stored, e.modified))
        except Exception as exc:
            raise _failed(tier, exc) from None
    return ObjectListReport(tuple(out))


# -- verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectProblem:
    cache: str
    key: str
    problem: str


@dataclass(frozen=True)
class ObjectVerifyReport(Report):
    schema = "verify-object"
    caches: tuple[str, ...]
    checked: int
    bytes_checked: int
    sample: float  # percent of each entry's parts read
    problems: tuple[ObjectProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return len(self.problems)

    @property
    def exit_code(self) -> ExitCode:
        """1 when an entry failed its checks."""
        return ExitCode.PROBLEM if self.problems else ExitCode.OK


def verify_object(
    manager: CacheManager,
    cache: str | None,
    *,
    sample: float = 100.0,
    progress: Progress | None = None,
) -> ObjectVerifyReport:
    """Every entry record through the read gate, its parts against the signed manifest.

    ``sample`` (percent) reads that share of each entry's parts, chosen at random (at least
    one); 100 reads every byte and checks the whole value's digest too. Writes nothing.
    """
    names = object_caches(manager, cache)
    checked = seen = 0
    problems = []
    fraction = None if sample >= 100.0 else max(sample, 0.0) / 100.0
    for name in names:
        tier = tier_for(manager, name)
        try:
            for check in tier.verify_entries(fraction):
                checked += 1
                seen += check.bytes
                if check.problem is not None:
                    problems.append(ObjectProblem(name, check.key, check.problem))
                if progress is not None:
                    progress(checked, None)
        except Exception as exc:
            raise _failed(tier, exc) from None
    return ObjectVerifyReport(tuple(names), checked, seen, sample, tuple(problems))


# -- evict and clean ----------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRemovalReport(Report):
    schema = "remove-object"
    dry_run: bool
    entries: int
    parts: int
    bytes: int  # part bytes freed
    keys: tuple[str, ...]


def evict_object_keys(
    manager: CacheManager,
    cache: str | None,
    *,
    keys: list[str],
    match: str | None,
    dry_run: bool = False,
) -> ObjectRemovalReport:
    """Delete the entry records named by ``keys`` or matching ``match`` (their parts stay
    until ``clean`` finds them unreferenced)."""
    if not keys and match is None:
        raise OptionError("keys", "the object tier needs keys or a match glob", also=("match",))
    gone: list[str] = []
    for name in object_caches(manager, cache):
        tier = tier_for(manager, name)
        if tier.read_only and not dry_run:
            raise UsageError(f"cache {name!r}: the object tier is read-only (mode = read-only)")
        try:
            chosen = [e.key for e in tier.entries() if e.key in keys or (
                match is not None and fnmatch.fnmatchcase(e.key, match))]  # fmt: skip
            for key in chosen:
                if dry_run or tier.remove(key):
                    gone.append(key)
        except Exception as exc:
            raise _failed(tier, exc) from None
    return ObjectRemovalReport(dry_run, len(gone), 0, 0, tuple(gone))


def clean_object(
    manager: CacheManager,
    cache: str | None,
    *,
    dry_run: bool = False,
    grace: float = CLEAN_GRACE,
) -> ObjectRemovalReport:
    """Delete parts no entry record (of any cache under the prefix) refers to, idle past
    ``grace`` seconds: what killed uploads left, and what evicted entries used."""
    names = object_caches(manager, cache)
    tier = tier_for(manager, names[0] if names else "default")
    if tier.read_only and not dry_run:
        raise UsageError("the object tier is read-only (mode = read-only): nothing is cleaned")
    try:
        gone = tier.clean_parts(grace, dry_run=dry_run)
    except Exception as exc:
        raise _failed(tier, exc) from None
    return ObjectRemovalReport(
        dry_run, 0, len(gone), sum(b.bytes for b in gone), tuple(b.name for b in gone)
    )
