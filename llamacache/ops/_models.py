"""Model revisions as a cache's index sees them: manifests, the blobs they list, loose blobs.

The model cache stores each distinct file body once, as a blob ``blobs/{checksum}/{digest}``
(``ml.model``), and each revision as a manifest ``{model}@{rev}/.manifest.json`` listing
the blobs it uses. One read-only scan of the index answers what ``evict --keep-last``,
``verify`` and ``repair`` ask about that: which revisions exist (and when they were
stored), which blobs a revision lists, which listed blobs are gone, and which blobs no
revision lists. Manifests are read and verified like any entry (``engine.decode``) and
validated row by row (``ml.model.parse_manifest``); nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llamacache.engine import decode, index
from llamacache.engine.index import Problem
from llamacache.errors import LlamacacheError
from llamacache.ml.revisions import BLOBS, MANIFEST, REF, manifest_key, parse_manifest

MODEL_KEY = re.compile(r"^(?P<model>.+)@(?P<rev>[^/]+)/(?P<path>.+)$")  # "{model}@{rev}/{file}"


@dataclass(frozen=True)
class Revision:
    """One revision's manifest row and the blobs it lists (None: the manifest is unreadable)."""

    model: str
    rev: str
    rowid: int
    stored: float
    size: int
    blobs: frozenset[str] | None


@dataclass(frozen=True)
class Blob:
    key: str
    rowid: int
    stored: float
    size: int


@dataclass
class ModelScan:
    revisions: list[Revision] = field(default_factory=list)
    blobs: dict[str, Blob] = field(default_factory=dict)
    files: list[tuple[int, str, str, float]] = field(default_factory=list)  # per-revision rows
    refs: list[tuple[int, str, str | None]] = field(default_factory=list)  # rowid, model, target

    def listed(self) -> set[str] | None:
        """Blobs some manifest lists; None when a manifest cannot be read (then any blob
        may be listed, and none may be called loose)."""
        out: set[str] = set()
        for r in self.revisions:
            if r.blobs is None:
                return None
            out |= r.blobs
        return out


def scan(snap: index.Snapshot) -> ModelScan:
    """Every manifest, per-revision file and blob row of one cache (reads manifests only)."""
    found = ModelScan()
    for row in snap.rows([index.Cond("key", "glob", f"{BLOBS}/*")]):
        key = row.key_text
        found.blobs[key] = Blob(key, row.rowid, row.store_time, row.size)
    for row in snap.rows([index.Cond("key", "glob", "*@*/*")]):
        m = MODEL_KEY.match(row.key_text)
        if m is None or "@" in m["model"]:
            continue
        if m["path"] == MANIFEST:
            blobs = _manifest_blobs(snap, row, m["model"], m["rev"])
            found.revisions.append(
                Revision(m["model"], m["rev"], row.rowid, row.store_time, row.size, blobs)
            )
        elif m["path"] == REF:
            found.refs.append((row.rowid, m["model"], _ref_target(snap, row)))
        else:  # a file stored under its revision (before blobs)
            found.files.append((row.rowid, m["model"], m["rev"], row.store_time))
    return found


def _ref_target(snap: index.Snapshot, row: index.Row) -> str | None:
    """The revision a ref row names (read and verified), or None when it cannot be read."""
    payload = snap.value_of(row.rowid)
    if row.tag is None or payload is None:
        return None
    try:
        text = decode(row.tag, payload, "", row.key_text)
    except (LlamacacheError, ValueError):
        return None
    return text if isinstance(text, str) else None


def _manifest_blobs(
    snap: index.Snapshot, row: index.Row, model: str, rev: str
) -> frozenset[str] | None:
    """The blob keys one manifest row lists (the row read and verified), or None."""
    payload = snap.value_of(row.rowid)
    if row.tag is None or payload is None:
        return None
    try:
        text = decode(row.tag, payload, "", row.key_text)
        if not isinstance(text, str):
            return None
        info = parse_manifest(text, "", model, rev)
    except (LlamacacheError, ValueError):
        return None
    return frozenset(info.key(f) for f in info.files if f.checksum)


def old_revisions(snap: index.Snapshot, keep: int) -> set[int]:
    """Rowids of model entries outside each model's ``keep`` newest revisions (by newest
    store time among a revision's rows): their manifests, per-revision files, the refs
    naming them (as ``hf cache`` deletes ``refs/<name>`` with its revision: no ref may
    resolve to a revision that is gone), and the blobs only those revisions list. A blob any
    kept manifest lists stays; if a kept manifest cannot be read, no blob is chosen."""
    found = scan(snap)
    newest: dict[str, dict[str, float]] = {}
    members = [(r.rowid, r.model, r.rev, r.stored) for r in found.revisions] + found.files
    for _, model, rev, stored in members:
        revs = newest.setdefault(model, {})
        revs[rev] = max(revs.get(rev, 0.0), stored)
    kept = {
        model: set(sorted(revs, key=revs.__getitem__, reverse=True)[:keep])
        for model, revs in newest.items()
    }
    old = {rowid for rowid, model, rev, _ in members if rev not in kept[model]}
    old |= {
        rowid
        for rowid, model, target in found.refs
        if target in newest.get(model, {}) and target not in kept[model]
    }
    still: set[str] = set()
    gone: set[str] = set()
    for r in found.revisions:
        if r.rev in kept[r.model]:
            if r.blobs is None:
                return old  # a kept revision's blobs are unknown: keep every blob
            still |= r.blobs
        else:
            gone |= r.blobs or set()
    return old | {found.blobs[k].rowid for k in gone - still if k in found.blobs}


def released_blobs(found: ModelScan, going: set[int]) -> list[Blob]:
    """The blobs that only revisions whose manifest rows are in ``going`` list: removing
    those revisions leaves them to no one (a file's bytes go with its last revision). None
    is chosen when a revision that stays cannot be read (it may list any blob)."""
    gone: set[str] = set()
    still: set[str] = set()
    for r in found.revisions:
        if r.rowid in going:
            gone |= r.blobs or set()
        elif r.blobs is None:
            return []
        else:
            still |= r.blobs
    return [found.blobs[k] for k in sorted(gone - still) if k in found.blobs]


def problems(snap: index.Snapshot, now: float, grace: float) -> list[Problem]:
    """``incomplete``: a revision listing a blob the cache no longer holds (evicted or
    removed: ``get_model`` would fail). ``unreferenced``: a blob no revision lists, stored
    more than ``grace`` seconds ago (``temp_grace``: a younger one may belong to a
    ``put_model`` that has not written its manifest yet). ``repair`` removes both entries."""
    found = scan(snap)
    out: list[Problem] = []
    for r in found.revisions:
        missing = sorted((r.blobs or frozenset()) - found.blobs.keys())
        if missing:
            detail = f"revision {r.model}@{r.rev} lists {len(missing)} file(s) no longer cached"
            key = manifest_key(r.model, r.rev)
            out.append(Problem("incomplete", key, None, detail, r.rowid, r.stored, r.size))
    listed = found.listed()
    if listed is not None:
        for b in found.blobs.values():
            if b.key not in listed and b.stored < now - grace:
                detail = "no model revision lists this file"
                out.append(Problem("unreferenced", b.key, None, detail, b.rowid, b.stored, b.size))
    return out
