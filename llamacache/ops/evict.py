"""``evict``: pick entries by key, glob, age, size, revision or target size; then remove them.

A plan (``plan_evict``) is made from a read-only engine snapshot of the index and can be
shown, saved as JSON and applied later (``apply_evict``), which skips entries changed since
(another store time or size). ``--to-size`` walks the cache's policy order over the whole
index (a true global order) until the rows removed cover the excess.
The memory front lives inside each process: a memory-tier plan only covers caches this
process has opened (a Python caller's), so from the command line it is empty.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamacache.config import units
from llamacache.config.settings import CacheSettings
from llamacache.engine import index
from llamacache.engine.eviction import POLICIES
from llamacache.engine.generation import bump_generation
from llamacache.engine.locking import admin_lock
from llamacache.errors import OptionError
from llamacache.manager import CacheManager
from llamacache.ml.revisions import BLOBS, MANIFEST, drop_unlisted
from llamacache.ops._common import canonical_tier, check_writable, network_warning, targets
from llamacache.ops._models import old_revisions, released_blobs, scan
from llamacache.ops._report import Report, ReportWarning

TIERS = ("memory", "disk", "local")  # "network" is ops.network_admin


@dataclass(frozen=True)
class Selectors:
    """What to remove; given selectors combine with AND. ``to_size``: "4GB" or "50%"."""

    keys: tuple[str, ...] = ()
    match: str | None = None
    older_than: float | None = None  # seconds since last access
    larger_than: int | None = None  # payload bytes
    to_size: str | None = None  # target of the cache's disk_size ("50%") or a size
    keep_last: int | None = None  # revisions kept per model

    def given(self) -> bool:
        return bool(
            self.keys
            or self.match is not None
            or self.older_than is not None
            or self.larger_than is not None
            or self.to_size is not None
            or self.keep_last is not None
        )


@dataclass(frozen=True)
class PlannedEntry:
    cache: str
    tier: str
    key: str
    bytes: int
    store_time: float
    access_time: float
    rowid: int = 0  # disk rows only
    file: bool = False
    # a model file's blob that only the revisions this plan removes list: at apply time it
    # goes only if no manifest lists it then (another revision may have been stored since)
    released: bool = False


@dataclass(frozen=True)
class EvictPlan(Report):
    schema = "evict-plan"
    tier: str
    selectors: Selectors
    entries: tuple[PlannedEntry, ...]
    bytes: int
    created: float
    notes: tuple[str, ...] = ()  # for information (a policy-order fallback, no memory front)
    warnings: tuple[ReportWarning, ...] = ()  # a cache on a network filesystem


@dataclass(frozen=True)
class EvictReport(Report):
    schema = "evict"
    planned: int
    planned_bytes: int
    removed: int
    freed_bytes: int
    skipped: tuple[str, ...]  # keys changed or gone since the plan was made
    by_cache: dict[str, int] = field(default_factory=dict)
    relisted: tuple[str, ...] = ()  # released blobs kept: a model revision lists them again

    @classmethod
    def nothing(cls) -> EvictReport:
        """The result of an empty plan: nothing planned, nothing removed."""
        return cls(planned=0, planned_bytes=0, removed=0, freed_bytes=0, skipped=())


# The selectors, as Selectors names them (the CLI spells each as its flag: --key, --match ...).
SELECTORS = ("key", "match", "older_than", "larger_than", "to_size", "keep_last")


def parse_target(text: str, s: CacheSettings) -> int:
    """``--to-size``: a size ("4GB") or a percentage of the cache's ``disk_size`` ("50%")."""
    value = text.strip()
    if value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct <= 100:
            raise OptionError(
                "to_size", f'{text!r} is not a size; expected e.g. "4GB" or "50%" (0-100%)'
            )
        return int(s.disk_size * pct / 100)
    try:
        return units.parse_size(value, field="to_size", base_path=s.path)
    except Exception as exc:
        raise OptionError("to_size", str(exc).removeprefix("to_size: ")) from None


def _conds(sel: Selectors, now: float) -> list[index.Cond]:
    out: list[index.Cond] = []
    if sel.keys:
        out.append(index.Cond("key", "in", tuple(sel.keys)))
    if sel.match is not None:
        out.append(index.Cond("key", "glob", sel.match))
    if sel.older_than is not None:
        out.append(index.Cond("access_time", "<", now - sel.older_than))
    if sel.larger_than is not None:
        out.append(index.Cond("size", ">", sel.larger_than))
    return out


def _disk_entries(
    s: CacheSettings, sel: Selectors, now: float, notes: list[str]
) -> Iterator[PlannedEntry]:
    """The rows the selectors pick, then the model blobs only their revisions list."""
    if not index.exists(s.path):
        return
    with index.Snapshot(s.path, cache=s.name) as snap:
        picked = list(_picked_rows(snap, s, sel, now, notes))
        for row in picked:
            yield _planned(s, row, released=sel.keep_last is not None and _is_blob(row))
        if any(r.key_text.endswith("/" + MANIFEST) for r in picked):
            rowids = {r.rowid for r in picked}
            for blob in released_blobs(scan(snap), rowids):
                found = snap.row(blob.rowid) if blob.rowid not in rowids else None
                if found is not None:
                    yield _planned(s, found, released=True)


def _is_blob(row: index.Row) -> bool:
    return row.key_text.startswith(BLOBS + "/")


def _planned(s: CacheSettings, row: index.Row, *, released: bool = False) -> PlannedEntry:
    return PlannedEntry(
        s.name,
        "disk",
        row.key_text,
        row.size,
        row.store_time,
        row.access_time,
        row.rowid,
        row.filename is not None,
        released,
    )


def _picked_rows(
    snap: index.Snapshot, s: CacheSettings, sel: Selectors, now: float, notes: list[str]
) -> Iterator[index.Row]:
    conds = _conds(sel, now)
    only = old_revisions(snap, sel.keep_last) if sel.keep_last is not None else None
    policy: str | None = None
    excess: int | None = None
    if sel.to_size is not None:
        target = parse_target(sel.to_size, s)
        excess = snap.index_bytes() - target
        policy = s.policy
        if POLICIES[s.policy].order is None:
            notes.append(f"cache {s.name!r} has policy none: --to-size uses lru order")
        if excess <= 0:
            return
    freed = 0
    for row in snap.rows(conds, policy=policy):
        if only is not None and row.rowid not in only:
            continue
        yield row
        if excess is not None:
            freed += row.cost
            if freed >= excess:
                return


def _memory_entries(
    manager: CacheManager, s: CacheSettings, sel: Selectors
) -> Iterator[PlannedEntry]:
    opened = manager.opened().get(s.name)
    if opened is None or sel.to_size is not None or sel.keep_last is not None:
        return
    for key in opened.memory.keys():  # noqa: SIM118 (a method, not a dict)
        text = index.key_text(key)
        if sel.keys and text not in sel.keys:
            continue
        if sel.match is not None and not (
            isinstance(key, str) and fnmatch.fnmatchcase(key, sel.match)
        ):
            continue
        yield PlannedEntry(s.name, "memory", text, 0, 0.0, 0.0)


def plan_evict(
    manager: CacheManager, cache: str | None, sel: Selectors, *, tier: str = "disk"
) -> EvictPlan:
    """What ``evict`` would remove; reads the index only (UsageError for bad selectors)."""
    tier = canonical_tier(tier)
    if tier not in TIERS:
        raise OptionError("tier", f"{tier!r} is not a tier; expected one of {', '.join(TIERS)}")
    if not sel.given():
        raise OptionError(
            None, f"evict needs a selector: {', '.join(SELECTORS[:-1])} or {SELECTORS[-1]}",
            also=SELECTORS,
        )  # fmt: skip
    if sel.keep_last is not None and sel.keep_last < 0:
        raise OptionError("keep_last", f"{sel.keep_last} is not a count; expected 0 or more")
    now = time.time()
    notes: list[str] = []
    warnings: list[ReportWarning] = []
    entries: list[PlannedEntry] = []
    for s in targets(manager, cache):
        if (warning := network_warning(s)) is not None:
            warnings.append(warning)
        if tier in ("disk", "local"):
            entries += _disk_entries(s, sel, now, notes)
        if tier == "memory":
            entries += _memory_entries(manager, s, sel)
    if tier == "memory" and not manager.opened():
        notes.append("the memory front lives inside each process; this process holds none")
    return EvictPlan(
        tier=tier,
        selectors=sel,
        entries=tuple(entries),
        bytes=sum(e.bytes for e in entries),
        created=now,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def prepare_evict(
    manager: CacheManager,
    cache: str | None,
    sel: Selectors,
    *,
    tier: str = "disk",
    saved: Path | None = None,
    save_to: Path | None = None,
) -> EvictPlan:
    """The plan an evict works from: read from ``saved`` (a plan saved earlier) or made
    from ``sel``; written to ``save_to`` as well when given."""
    plan = load_plan(saved) if saved is not None else plan_evict(manager, cache, sel, tier=tier)
    if save_to is not None:
        save_plan(plan, save_to)
    return plan


def apply_evict(manager: CacheManager, plan: EvictPlan, *, wait: float = 0.0) -> EvictReport:
    """Remove the planned entries under each cache's admin lock; index rows before files.

    Rows whose store time or size changed since the plan are skipped and named.
    Raises LockBusyError (exit 3) when another clean/evict/repair holds a cache's lock.
    """
    by_cache: dict[str, list[PlannedEntry]] = {}
    for e in plan.entries:
        by_cache.setdefault(e.cache, []).append(e)
    removed = freed = 0
    skipped: list[str] = []
    relisted: list[str] = []
    counts: dict[str, int] = {}
    for name, items in by_cache.items():
        s = manager.settings.cache(name)
        check_writable(s)
        with admin_lock(s.path, cache=name, wait=wait):
            tiered = manager.cache(name)
            disk = [e for e in items if e.tier == "disk" and not e.released]
            done, missed = tiered.disk.remove_rows((e.rowid, e.store_time, e.bytes) for e in disk)
            # then the blobs only the removed revisions listed, if none lists them now
            blobs = [(e.key, e.rowid, e.store_time, e.bytes) for e in items if e.released]
            b_count, b_bytes, kept = drop_unlisted(tiered, blobs)
            bump_generation(s.path)  # other processes drop their memory copies
            gone = set(missed)
            skipped += [e.key for e in disk if e.rowid in gone]
            relisted += kept
            for e in items:
                if plan.tier in ("memory", "local"):
                    tiered.memory.discard(e.key)
            removed += done.count + b_count + sum(1 for e in items if e.tier == "memory")
            freed += done.bytes + b_bytes
            counts[name] = done.count + b_count
    return EvictReport(
        planned=len(plan.entries),
        planned_bytes=plan.bytes,
        removed=removed,
        freed_bytes=freed,
        skipped=tuple(skipped),
        by_cache=counts,
        relisted=tuple(relisted),
    )


# -- saved plans -------------------------------------------------------------------------------


def save_plan(plan: EvictPlan, path: Path) -> None:
    """Write the plan as its JSON report (``--plan-out``)."""
    path.write_text(json.dumps(plan.to_json(), indent=2) + "\n")


def load_plan(path: Path) -> EvictPlan:
    """Read a plan written by ``save_plan`` (UsageError naming the file if it is not one)."""
    try:
        body = json.loads(path.read_text())
        if body.get("schema") != "llamacache.evict-plan":
            raise ValueError("not an evict plan")
        raw: dict[str, Any] = dict(body["selectors"])
        raw["keys"] = tuple(raw.get("keys", ()))
        sel = Selectors(**raw)
        entries = tuple(PlannedEntry(**e) for e in body["entries"])
        return EvictPlan(
            tier=canonical_tier(body["tier"]),
            selectors=sel,
            entries=entries,
            bytes=int(body["bytes"]),
            created=float(body["created"]),
            notes=tuple(body.get("notes", ())),
            warnings=tuple(ReportWarning(**w) for w in body.get("warnings", ())),
        )
    except FileNotFoundError:
        raise OptionError("saved", f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise OptionError("saved", f"{path} is not a saved evict plan ({exc})") from None
