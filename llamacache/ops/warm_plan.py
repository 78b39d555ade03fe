"""What ``warm`` would store: sources (files, dirs, globs, manifests, HF hub caches) -> items.

Planning reads directory listings and sizes only. It refuses, before anything is written,
a manifest entry that leaves the manifest's folder and a symlink inside a warmed folder that
points outside it (a hub repo's snapshot links into its own ``blobs/`` are inside).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

from llamacache.errors import OptionError, UsageError
from llamacache.ml.revisions import (
    DEFAULT_REVISION,
    check_name,
    check_relpath,
    check_revision,
    file_key,
)

_GLOB = set("*?[")


@dataclass(frozen=True)
class WarmItem:
    """One file to store: where it is read from and the key it gets."""

    source: Path
    key: str
    size: int
    model: str | None = None  # model caches: the model@revision group it completes
    revision: str | None = None
    relpath: str | None = None
    replace: bool = False  # a folder import: the revision is exactly this folder's files
    refs: tuple[str, ...] = ()  # hub refs (``main``) naming this item's revision


def _inside(path: Path, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def expand(arg: str, base: Path | None = None) -> list[Path]:
    """A source argument (or a manifest entry relative to ``base``) as existing paths."""
    if base is not None and (os.path.isabs(arg) or ".." in Path(arg).parts):
        raise UsageError(f"manifest entry {arg!r} must be a path inside {base}")
    path = base / arg if base is not None else Path(arg)
    if path.exists():
        found = [path]
    elif _GLOB & set(arg):
        found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
        if not found:
            raise UsageError(f"{arg}: the pattern matches nothing")
    else:
        raise UsageError(f"{arg}: no such file or directory")
    if base is not None:
        for p in found:
            if not _inside(p, base):
                raise UsageError(f"manifest entry {arg!r} resolves outside {base}")
    return found


def read_manifest(path: Path) -> list[str]:
    """Entries of a manifest: JSON (a list, or {"files": [...]}) or one path per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionError("manifest", f"{exc.strerror or exc}", value=str(path)) from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptionError("manifest", f"not valid JSON: {exc}", value=str(path)) from None
        entries = body.get("files") if isinstance(body, dict) else body
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise OptionError(
                "manifest", 'expected a JSON list of paths or {"files": [...]}', value=str(path)
            )
        return entries
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _walk(root: Path, fence: Path) -> list[tuple[Path, str]]:
    """Files under ``root`` (following file symlinks that stay inside ``fence``), sorted."""
    out: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*filenames, *dirnames]:
            p = Path(dirpath) / name
            if p.is_symlink() and not _inside(p, fence):
                raise UsageError(
                    f"refusing {p}: it links to {os.path.realpath(p)}, outside {fence}"
                )
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_file():
                out.append((p, p.relative_to(root).as_posix()))
    return out


def _hub_repos(path: Path) -> list[Path]:
    """Hub repos (``models--org--name`` with ``snapshots/``) at or directly under ``path``."""
    if path.name.startswith("models--") and (path / "snapshots").is_dir():
        return [path]
    if path.is_dir():
        return sorted(
            c
            for c in path.iterdir()
            if c.name.startswith("models--") and (c / "snapshots").is_dir()
        )
    return []


def _hub_refs(repo: Path) -> dict[str, list[str]]:
    """A hub repo's top-level refs by the commit they name (``{commit: ["main"]}``)."""
    out: dict[str, list[str]] = {}
    refs = repo / "refs"
    if refs.is_dir() and not refs.is_symlink():
        for ref in sorted(refs.iterdir()):
            if ref.is_file() and not ref.is_symlink() and ref.stat().st_size <= 256:
                try:
                    check_revision(ref.name)
                    commit = check_revision(ref.read_text(encoding="utf-8").strip())
                except (UsageError, OSError, UnicodeDecodeError):
                    continue  # not a ref we can record (refs/pr/N are folders)
                out.setdefault(commit, []).append(ref.name)
    return out


def _hub_snapshots(repo: Path, revision: str | None) -> list[Path]:
    """The snapshots to warm; ``revision`` resolves as the hub does: ``refs/<revision>``,
    else a snapshot (commit) of that name, else a unique prefix of one. UsageError when it
    names none (or several)."""
    snaps = sorted(p for p in (repo / "snapshots").iterdir() if p.is_dir())
    if revision is None:
        return snaps
    ref = repo / "refs" / revision
    by_name = {s.name: s for s in snaps}
    if revision in by_name:
        want = revision
    elif ref.is_file() and _inside(ref, repo / "refs"):
        want = ref.read_text(encoding="utf-8", errors="replace").strip()
    else:
        found = [n for n in by_name if n.startswith(revision)] if len(revision) >= 4 else []
        if len(found) > 1:
            raise UsageError(f"revision {revision!r} is ambiguous in {repo}: {', '.join(found)}")
        want = found[0] if found else ""
    if want not in by_name:
        known = sorted(r for rs in _hub_refs(repo).values() for r in rs) + list(by_name)
        raise UsageError(
            f"revision {revision!r} is not a ref or a snapshot of {repo}; "
            f"expected one of: {', '.join(known) or 'none'}"
        )
    return [by_name[want]]


class Planner:
    """Turns sources into WarmItems for one cache; model caches get model@revision keys."""

    def __init__(self, model_layout: bool, revision: str | None, name: str | None) -> None:
        self.model_layout = model_layout
        self.revision = revision
        self.name = name
        self.items: dict[str, WarmItem] = {}  # by key: a file named twice is stored once

    def _add(self, item: WarmItem) -> None:
        self.items.setdefault(item.key, item)

    def _model_item(self, src: Path, model: str, rev: str, rel: str, replace: bool) -> WarmItem:
        check_name(model)
        check_revision(rev)
        check_relpath(rel)
        size = src.stat().st_size
        return WarmItem(src, file_key(model, rev, rel), size, model, rev, rel, replace)

    def add_path(self, path: Path, named: bool = False) -> None:
        """One existing path: a hub cache/repo/snapshot, a folder, or a file.

        ``named``: the path was given as it is (not matched by a glob or a manifest); a
        file given so becomes its own model, named after the file without its extension,
        rather than a model named after whatever folder it happens to sit in.
        """
        path = Path(os.path.abspath(path))
        if self.model_layout:
            repos = _hub_repos(path)
            if repos:
                for repo in repos:
                    self._add_hub_repo(repo, _hub_snapshots(repo, self.revision))
                return
            if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
                self._add_hub_repo(path.parent.parent, [path])
                return
        if path.is_dir():
            for src, rel in _walk(path, path):
                if self.model_layout:
                    model = self.name or path.name
                    rev = self.revision or DEFAULT_REVISION
                    self._add(self._model_item(src, model, rev, rel, True))
                else:
                    key = f"{self.name or path.name}/{rel}"
                    self._add(WarmItem(src, key, src.stat().st_size))
        elif path.is_file():
            if self.model_layout:
                model = self.name or (path.stem if named else path.parent.name)
                rev = self.revision or DEFAULT_REVISION
                self._add(self._model_item(path, model, rev, path.name, False))
            else:
                key = f"{self.name}/{path.name}" if self.name else path.name
                self._add(WarmItem(path, key, path.stat().st_size))
        else:
            raise UsageError(f"{path}: not a regular file or directory")

    def _add_hub_repo(self, repo: Path, snapshots: list[Path]) -> None:
        model = self.name or repo.name[len("models--") :].replace("--", "/")
        refs = _hub_refs(repo)
        for snap in snapshots:
            for src, rel in _walk(snap, repo):
                real = Path(os.path.realpath(src))
                item = self._model_item(real, model, snap.name, rel, True)
                self._add(dataclasses.replace(item, refs=tuple(refs.get(snap.name, ()))))
