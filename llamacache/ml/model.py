"""The model cache: a model's files under ``{model}@{revision}/{path}`` keys, read back mmapped.

Every file of a model revision is one raw file entry (``TieredCache.put_file``: streamed,
digest recorded, stored byte-for-byte) so ``get_path`` hands out a path that can be
memory-mapped; ``admin evict --keep-last N`` groups entries by the ``{model}@{revision}/``
prefix. A small manifest (``{model}@{revision}/.manifest.json``) is written LAST, so an
interrupted ``put_model`` never looks complete, and removed FIRST when a revision is replaced.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from llamacache.engine.framing import EntryMeta
from llamacache.engine.safety import leads_outside
from llamacache.engine.tiered import TieredCache
from llamacache.errors import CorruptEntryError, UsageError
from llamacache.errors import NotCachedError as NotCachedError  # its old home
from llamacache.formats import VALIDATORS
from llamacache.formats import safetensors as st
from llamacache.manager import CacheManager

DEFAULT_REVISION = "main"
MANIFEST = ".manifest.json"
WEIGHTS = "model.safetensors"  # the file name put_model gives a dict of arrays
SNAPSHOTS_DIR = "snapshots"  # model_path views, in the cache's own directory


def check_name(name: str) -> str:
    """A model name: path-like segments ("org/model"), no "@", no "." or ".." segments."""
    parts = name.split("/")
    if (
        not name
        or "@" in name
        or "\\" in name
        or "\0" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise UsageError(
            f"model name {name!r} is not valid; expected e.g. 'llama-7b' or 'org/model'"
        )
    return name


def check_revision(revision: str | None) -> str:
    rev = DEFAULT_REVISION if revision is None else revision
    if not rev or any(c in rev for c in "/@\\\0") or rev in (".", ".."):
        raise UsageError(f"revision {rev!r} is not valid; expected e.g. 'main' or a commit hash")
    return rev


def check_relpath(rel: str) -> str:
    """A file path inside a model: relative, normalized, no "..", never the manifest's name.

    Manifests are data, not paths: this runs when a manifest is written *and* when one is
    read (it may come from a shared tier or an archive), so no listed path can reach
    outside the model's own ``snapshots/`` folder.
    """
    bad = (
        not isinstance(rel, str)
        or not rel
        or len(rel) > 4096
        or any(c in rel for c in "\0\\")
        or any(ord(c) < 32 for c in rel)
        or PurePosixPath(rel).is_absolute()
        or any(s in ("", ".", "..") for s in rel.split("/"))
    )
    if bad:
        raise UsageError(f"model file path {rel!r} must be relative and stay inside the model")
    if rel == MANIFEST:
        raise UsageError(f"model file path {rel!r} is reserved for llamacache's manifest")
    return rel


def file_key(name: str, revision: str, rel: str) -> str:
    return f"{name}@{revision}/{rel}"


def manifest_key(name: str, revision: str) -> str:
    return f"{name}@{revision}/{MANIFEST}"


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative, posix
    size: int
    digest: str  # hex, the cache's checksum algorithm


@dataclass(frozen=True)
class ModelInfo:
    name: str
    revision: str
    files: tuple[ModelFile, ...]
    created: float  # epoch seconds the manifest was written

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def write_manifest(
    cache: TieredCache, name: str, revision: str, files: Mapping[str, EntryMeta | ModelFile]
) -> ModelInfo:
    """Record a revision as complete (call only after every file is stored)."""
    for rel in files:
        check_relpath(rel)
    entries = tuple(
        sorted(
            (
                m if isinstance(m, ModelFile) else ModelFile(rel, m.raw_len, m.digest.hex())
                for rel, m in files.items()
            ),
            key=lambda f: f.path,
        )
    )
    info = ModelInfo(name, revision, entries, time.time())
    body = {
        "model": name,
        "revision": revision,
        "created": info.created,
        "files": [{"path": f.path, "size": f.size, "digest": f.digest} for f in entries],
    }
    cache.put(manifest_key(name, revision), json.dumps(body))
    return info


def _manifest_file(row: object) -> ModelFile:
    """One validated manifest row (a row is data: its path is checked like user input)."""
    if not isinstance(row, dict):
        raise TypeError("a file row is not an object")
    size, digest = row["size"], row["digest"]
    if type(size) is not int or size < 0:
        raise ValueError(f"size {size!r} is not a byte count")
    if not isinstance(digest, str) or not digest or len(digest) > 128:
        raise ValueError(f"digest {digest!r} is not a hex digest")
    bytes.fromhex(digest)
    return ModelFile(check_relpath(row["path"]), size, digest)


def read_manifest(cache: TieredCache, name: str, revision: str) -> ModelInfo | None:
    raw = cache.get(manifest_key(name, revision))
    if not isinstance(raw, str):
        return None
    try:
        body = json.loads(raw)
        files = tuple(_manifest_file(f) for f in body["files"])
        if len({f.path for f in files}) != len(files):
            raise ValueError("a path is listed twice")
        return ModelInfo(name, revision, files, float(body["created"]))
    except (ValueError, KeyError, TypeError) as exc:  # UsageError is a ValueError too
        key = manifest_key(name, revision)
        raise CorruptEntryError(cache.name, key, f"bad manifest: {exc}") from None


def _check_safetensors(sources: Mapping[str, Path]) -> None:
    """UsageError for a ``*.safetensors`` file that is not one (reads headers only).

    ``get_model`` could not load it and ``verify`` would call it corrupt later; refusing
    it before the first store names the real culprit, the source file.
    """
    validate = VALIDATORS["safetensors"]
    for rel, path in sources.items():
        if rel.endswith(".safetensors"):
            problem = validate(path)
            if problem is not None:
                raise UsageError(f"{path}: not a valid safetensors file: {problem}")


class ModelCache:
    """Models in the ``model`` cache: put arrays or files, get tensors (mmapped), get paths.

    ``ModelCache()`` uses the resolved configuration (like ``CacheManager()``);
    ``ModelCache(manager)`` uses a given manager. Thread-safe as the cache is.
    """

    def __init__(self, manager: CacheManager | None = None, cache: str = "model") -> None:
        self._own = manager is None
        self.manager = manager if manager is not None else CacheManager()
        self.cache = self.manager.cache(cache)

    # -- writes -----------------------------------------------------------------------------

    def put_model(
        self,
        name: str,
        tensors_or_path: Mapping[str, Any] | str | Path,
        revision: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """Store a dict of arrays (as ``model.safetensors``), one file, or a whole directory.

        A directory replaces the revision's file set; a file or a dict of arrays is added to
        it. Files are streamed (4 MiB blocks), never read whole. Raises UsageError when the
        model cannot fit the cache (it would evict itself), a path is not a file/dir, or a
        ``*.safetensors`` file is not valid safetensors (nothing is stored then).
        """
        check_name(name)
        rev = check_revision(revision)
        sources: dict[str, Any] = {}
        replace = False
        if isinstance(tensors_or_path, (str, Path)):
            src = Path(tensors_or_path)
            if src.is_dir():
                replace = True
                for path in sorted(src.rglob("*")):
                    if path.is_file():
                        sources[check_relpath(path.relative_to(src).as_posix())] = path
            elif src.is_file():
                sources[check_relpath(src.name)] = src
            else:
                raise UsageError(f"{src}: no such file or directory")
            size = sum(p.stat().st_size for p in sources.values())
            _check_safetensors(sources)
        else:
            stream = st.TensorStream(tensors_or_path, metadata)
            sources[WEIGHTS] = stream
            size = stream.size
        self._check_fits(name, size)
        old = None if replace else read_manifest(self.cache, name, rev)
        self.cache.remove(manifest_key(name, rev))  # from here on the revision is incomplete
        files: dict[str, EntryMeta | ModelFile] = {f.path: f for f in old.files} if old else {}
        for rel, src in sources.items():
            files[rel] = self.cache.put_file(file_key(name, rev, rel), src)
        if replace:
            prefix = f"{name}@{rev}/"
            for key in list(self._keys(name, rev)):
                rel = key[len(prefix) :]
                if rel not in files and rel != MANIFEST:
                    self.cache.remove(key)
        return write_manifest(self.cache, name, rev, files)

    def _check_fits(self, name: str, size: int) -> None:
        s = self.cache.settings
        limit = int(s.eviction_threshold * s.disk_size)
        if size > limit:
            from llamacache._config_schema import cache_env
            from llamacache.units import format_size

            raise UsageError(
                f"model {name!r} is {format_size(size)} but cache {self.cache.name!r} keeps at "
                f"most {format_size(limit)}; raise caches.{self.cache.name}.size "
                f"({cache_env(self.cache.name, 'size')})"
            )

    def _keys(self, name: str, rev: str) -> Iterator[str]:
        prefix = f"{name}@{rev}/"
        for key in self.cache.disk.iter_keys():
            if isinstance(key, str) and key.startswith(prefix):
                yield key

    def remove_model(self, name: str, revision: str | None = None) -> int:
        """Remove one revision (or every revision when None); returns entries removed."""
        check_name(name)
        revs = [check_revision(revision)] if revision is not None else self.revisions(name)
        n = 0
        for rev in revs:
            n += self.cache.remove(manifest_key(name, rev))  # first: never half-complete
            for key in list(self._keys(name, rev)):
                n += self.cache.remove(key)
        return n

    # -- reads ------------------------------------------------------------------------------

    def info(self, name: str, revision: str | None = None) -> ModelInfo:
        """The complete revision's manifest; NotCachedError when absent or incomplete."""
        check_name(name)
        rev = check_revision(revision)
        info = read_manifest(self.cache, name, rev)
        if info is None:
            raise NotCachedError(f"model {name}@{rev} is not in cache {self.cache.name!r}")
        return info

    def revisions(self, name: str) -> list[str]:
        """Complete revisions of ``name``, newest first (one scan of the cache's keys)."""
        check_name(name)
        found: list[tuple[float, str]] = []
        for key in self.cache.disk.iter_keys():
            if isinstance(key, str) and key.startswith(f"{name}@") and key.endswith(MANIFEST):
                rev = key[len(name) + 1 : -len(MANIFEST) - 1]
                info = read_manifest(self.cache, name, rev) if "/" not in rev else None
                if info is not None:
                    found.append((info.created, rev))
        return [rev for _, rev in sorted(found, reverse=True)]

    def _path(self, info: ModelInfo, f: ModelFile) -> Path:
        path = self.cache.get_path(file_key(info.name, info.revision, f.path))
        if path is None:
            raise NotCachedError(
                f"model {info.name}@{info.revision}: {f.path} is no longer in cache "
                f"{self.cache.name!r} (evicted?); put the model again"
            )
        return path

    def get_model(
        self, name: str, revision: str | None = None, *, mmap: bool | None = None
    ) -> dict[str, Any]:
        """Every tensor of the revision's ``.safetensors`` files, by name.

        With ``use_mmap`` (or ``mmap=True``) arrays are read-only views of a memory map of
        the cache file: memory grows only by the pages touched (as reclaimable page cache).
        The digest is checked once per file identity in this process (the first map after
        any change pays one hash pass; later calls cost a header parse). Without mmap the
        files are read whole and their digests checked. BF16 (and F8)
        tensors come back as uint16 (uint8) views of the bits unless ml_dtypes is installed.
        Raises NotCachedError, CorruptEntryError (a structurally broken file), UsageError.
        """
        info = self.info(name, revision)
        use_mmap = self.cache.settings.use_mmap if mmap is None else mmap
        weights = [f for f in info.files if f.path.endswith(".safetensors")]
        if not weights:
            raise UsageError(
                f"model {name}@{info.revision} has no .safetensors files; use model_path()"
            )
        out: dict[str, Any] = {}
        for f in weights:
            key = file_key(info.name, info.revision, f.path)
            if use_mmap:
                out.update(self._load_mmap(key, self._open(info, f)))
            else:
                out.update(self._load_read(key, self._path(info, f)))
        return out

    def _open(self, info: ModelInfo, f: ModelFile) -> Any:
        """The verified, open value file of one model file (NotCachedError when gone)."""
        found = self.cache.open_verified(file_key(info.name, info.revision, f.path), True)
        if found is None or found.handle is None:
            raise NotCachedError(
                f"model {info.name}@{info.revision}: {f.path} is no longer in cache "
                f"{self.cache.name!r} (evicted?); put the model again"
            )
        return found.handle

    def _corrupt(self, key: str, exc: Exception) -> CorruptEntryError:
        self.cache.corrupt += 1
        return CorruptEntryError(self.cache.name, key, f"not a valid safetensors file: {exc}")

    def _load_mmap(self, key: str, handle: Any) -> dict[str, Any]:
        """Map the verified descriptor itself: what was hashed is what is mapped."""
        import numpy as np

        with handle as f:
            size = os.fstat(f.fileno()).st_size
            try:
                header = st.read_header(f, size)
            except st.SafetensorsError as exc:
                raise self._corrupt(key, exc) from None
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # outlives the fd
        out: dict[str, Any] = {}
        for t in header.tensors.values():
            dtype = st.numpy_dtype(t.dtype)
            count = (t.end - t.begin) // dtype.itemsize
            arr = np.frombuffer(mm, dtype=dtype, count=count, offset=t.begin)
            out[t.name] = arr.reshape(t.shape)
        return out

    def _load_read(self, key: str, path: Path) -> dict[str, Any]:
        import numpy as np

        size = path.stat().st_size
        buf = np.empty(size, np.uint8)  # bytearray(size) would zero-fill first (2x slower)
        handle: Any = self.cache.open(key)
        if handle is None:
            raise NotCachedError(f"{key!r} is no longer in cache {self.cache.name!r}")
        with handle:
            view, n = memoryview(buf), 0  # type: ignore[arg-type]
            while n < size and (got := handle.readinto(view[n:])):
                n += got
            if n != size or handle.readinto(bytearray(1)):  # EOF read checks the digest
                raise CorruptEntryError(self.cache.name, key, "file changed size while read")
        try:
            n = int.from_bytes(buf[:8].tobytes(), "little") if size >= 8 else 0
            header = st.parse_header(buf[: 8 + min(n, st.MAX_HEADER)].tobytes(), size)
        except st.SafetensorsError as exc:
            raise self._corrupt(key, exc) from None
        out: dict[str, Any] = {}
        for t in header.tensors.values():
            dtype = st.numpy_dtype(t.dtype)
            out[t.name] = buf[t.begin : t.end].view(dtype).reshape(t.shape)
        return out

    def model_path(self, name: str, revision: str | None = None) -> Path:
        """A directory of symlinks to the cached files, for tools that want paths.

        It is a view: ``<cache dir>/snapshots/{model}/{revision}/``, rebuilt on each call
        (stale links replaced or removed). Files evicted later leave dangling links, so
        call it right before use. Raises NotCachedError when a file is gone.
        """
        info = self.info(name, revision)
        top = Path(self.cache.settings.path) / SNAPSHOTS_DIR
        base = top / info.name / info.revision
        wanted = {f.path: self._path(info, f) for f in info.files}
        for rel, target in wanted.items():
            link = base / check_relpath(rel)
            link.parent.mkdir(parents=True, exist_ok=True)
            if top.is_symlink() or leads_outside(base, link.parent):  # writes stay in snapshots/
                raise CorruptEntryError(
                    self.cache.name, manifest_key(info.name, info.revision),
                    f"file path {rel!r} leads outside {base}",
                )  # fmt: skip
            if link.is_symlink() and os.readlink(link) == str(target):
                continue
            tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        for path in sorted(base.rglob("*"), reverse=True):
            rel = path.relative_to(base).as_posix()
            if path.is_symlink() or path.is_file():
                if rel not in wanted:
                    path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return base

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the manager if this object made it (a given manager stays open)."""
        if self._own:
            self.manager.close()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
