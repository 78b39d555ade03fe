"""The model cache: put models (arrays, files, folders), get tensors mmapped, get path views.

How a revision is stored lives in ``revisions``: each distinct file body once, as a blob
shared by every revision and model with those bytes, and a revision as a manifest listing
blobs, written LAST so an interrupted ``put_model`` never looks complete, and removed FIRST
when a revision's file set is replaced. The manifest is published, and blobs no manifest
lists are removed, under the index's writer lock, so a published manifest never lists a
blob another process removed meanwhile. Removing a revision removes the blobs no other
manifest in the cache lists, so a file's bytes leave with the last revision that uses them.

Revision names resolve like the hub's: a ref (``main``, recorded by ``warm`` from a hub
repo's ``refs/``) names a commit; else a stored revision of that exact name; else a unique
prefix (4+ hex digits) of one.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from llamacache.engine import EntryMeta, index
from llamacache.engine.safety import leads_outside, make_dirs_inside
from llamacache.errors import (
    CacheIOError,
    CorruptEntryError,
    NotCachedError,
    UsageError,
)
from llamacache.formats import VALIDATORS
from llamacache.formats import safetensors as st
from llamacache.manager import CacheManager
from llamacache.ml.revisions import (
    BLOBS,
    DEFAULT_REVISION,
    MANIFEST,
    REF,
    ModelFile,
    ModelInfo,
    blob_key,
    check_name,
    check_relpath,
    check_revision,
    file_key,
    find_blob,
    hash_source,
    listed_files,
    manifest_key,
    parse_manifest,
    read_manifest,
    ref_key,
    share_files,
    store_blob,
    stored_manifest,
    write_manifest,
    write_ref,
)

__all__ = [
    "BLOBS",
    "DEFAULT_REVISION",
    "MANIFEST",
    "REF",
    "SNAPSHOTS_DIR",
    "WEIGHTS",
    "ModelCache",
    "ModelFile",
    "ModelInfo",
    "NotCachedError",
    "blob_key",
    "check_name",
    "check_relpath",
    "check_revision",
    "file_key",
    "find_blob",
    "hash_source",
    "listed_files",
    "manifest_key",
    "parse_manifest",
    "read_manifest",
    "ref_key",
    "store_blob",
    "write_manifest",
    "write_ref",
]

WEIGHTS = "model.safetensors"  # the file name put_model gives a dict of arrays
SNAPSHOTS_DIR = "snapshots"  # model_path views, in the cache's own directory
_SHORT_HASH = re.compile(r"[0-9a-f]{4,64}")
_PUBLISH_TRIES = 5  # stores of blobs another process removed before put_model could publish


def _sources(
    tensors_or_path: Mapping[str, Any] | str | Path, metadata: Mapping[str, str] | None
) -> tuple[dict[str, Any], int, bool]:
    """``({path in model: Path or stream factory}, total bytes, replaces the file set)``."""
    sources: dict[str, Any] = {}
    if not isinstance(tensors_or_path, (str, Path)):
        tensors = tensors_or_path
        sources[WEIGHTS] = lambda: st.TensorStream(tensors, metadata)
        return sources, st.TensorStream(tensors, metadata).size, False
    src = Path(tensors_or_path)
    if src.is_dir():
        for path in sorted(src.rglob("*")):
            if path.is_file():
                sources[check_relpath(path.relative_to(src).as_posix())] = path
    elif src.is_file():
        sources[check_relpath(src.name)] = src
    else:
        raise UsageError(f"{src}: no such file or directory")
    _check_safetensors(sources)
    return sources, sum(p.stat().st_size for p in sources.values()), src.is_dir()


def _source(src: Any, size: bool = False) -> Any:
    """A fresh reader of one ``_sources`` value (a Path, or a stream factory), or its size."""
    if isinstance(src, Path):
        return src.stat().st_size if size else src
    stream = src()
    return stream.size if size else stream


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
        it. Each file is stored once, as a blob: a file of a size some stored revision lists
        is hashed first and not written when its blob is there (one read, no write); any
        other is copied and hashed in one pass. Files are streamed in 4 MiB blocks, never
        read whole. A revision named like a ref (``main``) replaces
        that ref. Raises UsageError when the model cannot fit the cache (it would evict
        itself), a path is not a file/dir, or a ``*.safetensors`` file is not valid
        safetensors (nothing is stored then).
        """
        check_name(name)
        rev = check_revision(revision)
        sources, size, replace = _sources(tensors_or_path, metadata)
        self._check_fits(name, size)
        try:
            old = read_manifest(self.cache, name, rev)
        except CorruptEntryError:
            old = None
        listed = {f.size for f in listed_files(self.cache)}  # sizes a stored file could match
        files: dict[str, EntryMeta | ModelFile] = {}
        if old is not None and not replace:
            # added files: the stored revision stays complete (and keeps its blobs listed,
            # so no removal elsewhere takes them) until the new manifest replaces it
            files.update({f.path: f for f in old.files})
        else:  # a new file set: from here on the revision is incomplete
            self.cache.remove(manifest_key(name, rev))
        pending = dict(sources)
        for _ in range(_PUBLISH_TRIES):
            self._store(pending, files, listed)
            shared = share_files(self.cache, (name, rev, files))  # network: outside the lock
            # Publish under the index's writer lock, which blob removal holds while it looks
            # for manifests listing a blob (``_drop_unreferenced``): a blob found here stays
            # until the manifest naming it is gone, and one removed meanwhile is stored again.
            with self.cache.disk.transaction():
                gone = {r for r, m in files.items() if not self._holds(name, rev, r, m)}
                if not gone:
                    if replace:
                        for key in list(self._keys(name, rev)):  # old per-revision entries
                            if not key.endswith(("/" + MANIFEST, "/" + REF)):
                                self.cache.remove(key)
                    info = write_manifest(self.cache, name, rev, files, files_shared=shared)
                    self.cache.remove(ref_key(name, rev))  # "main" is now this revision
                    break
            lost = sorted(gone - sources.keys())
            if lost:  # only a removal of this very revision takes files it keeps
                raise NotCachedError(
                    f"model {name}@{rev} was removed while files were added to it "
                    f"({lost[0]} is gone); store the whole model again"
                )
            pending = {rel: sources[rel] for rel in gone}
        else:
            raise CacheIOError(
                f"model {name}@{rev}: other processes kept removing its files while it was "
                "stored; store it again"
            )
        if old is not None:
            self._drop_unreferenced(
                {old.key(f) for f in old.files if f.checksum} - {info.key(f) for f in info.files}
            )
        return info

    def _store(
        self, sources: Mapping[str, Any], files: dict[str, EntryMeta | ModelFile], listed: set[int]
    ) -> None:
        """Store each source as a blob (once) and record its header in ``files``."""
        algo = self.cache.settings.checksum
        for rel, src in sources.items():
            if _source(src, size=True) in listed:  # may be stored: look before writing
                digest, n = hash_source(_source(src), algo)
                files[rel] = store_blob(self.cache, rel, _source(src), digest, n)[0]
            else:  # cannot be stored yet: one pass, named after its digest
                files[rel] = store_blob(self.cache, rel, _source(src))[0]

    def _holds(self, name: str, rev: str, rel: str, m: EntryMeta | ModelFile) -> bool:
        """Whether the disk tier holds the entry a manifest row for ``m`` would name."""
        if isinstance(m, ModelFile):
            key = ModelInfo(name, rev, (), 0.0).key(m)
        else:
            key = blob_key(m.checksum, m.digest.hex(), rel)
        return self.cache.disk.contains(key)

    def _check_fits(self, name: str, size: int) -> None:
        limit = index.disk_limit(self.cache.settings)
        if size > limit:
            from llamacache.config.schema import cache_env
            from llamacache.config.units import format_size

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

    def _manifests(self, name: str | None = None) -> Iterator[tuple[str, str]]:
        """``(model, revision)`` of every manifest key in the cache (or of one model)."""
        for key in self.cache.disk.iter_keys():
            if not isinstance(key, str) or not key.endswith("/" + MANIFEST):
                continue
            model, at, rev = key[: -len(MANIFEST) - 1].partition("@")
            if at and rev and "/" not in rev and (name is None or model == name):
                yield model, rev

    def _referenced(self) -> set[str]:
        """Keys of every blob some readable manifest on disk lists (reads them all)."""
        used: set[str] = set()
        for model, rev in self._manifests():
            try:
                info = stored_manifest(self.cache, model, rev)
            except CorruptEntryError:
                continue
            if info is not None:
                used.update(info.key(f) for f in info.files if f.checksum)
        return used

    def _drop_unreferenced(self, candidates: set[str]) -> int:
        """Remove the blobs among ``candidates`` that no manifest lists any more: the bytes
        of a file go when its last revision goes. Returns entries removed.

        Holds the index's writer lock from the look at every manifest to the last removal;
        ``put_model`` holds it while it checks its blobs and publishes, so a blob is never
        removed from under a manifest being published (another process's included).
        """
        if not candidates:
            return 0
        with self.cache.disk.transaction():
            unused = sorted(candidates - self._referenced())
            return sum(self.cache.remove(key) for key in unused)

    def refs(self, name: str) -> dict[str, str]:
        """The model's refs (``{"main": commit}``), as ``warm`` recorded them from a hub repo."""
        check_name(name)
        out: dict[str, str] = {}
        prefix = f"{name}@"
        for key in self.cache.disk.iter_keys():
            if isinstance(key, str) and key.startswith(prefix) and key.endswith("/" + REF):
                ref = key[len(prefix) : -len(REF) - 1]
                target = self.cache.get(key)
                if "/" not in ref and isinstance(target, str):
                    out[ref] = target
        return out

    def set_ref(self, name: str, ref: str, revision: str) -> None:
        """Point ``ref`` (e.g. ``main``) at a stored revision, as a hub repo's ``refs/<ref>``."""
        write_ref(self.cache, name, ref, revision)

    def remove_model(self, name: str, revision: str | None = None) -> int:
        """Remove one revision (resolved like ``info``) or every revision and ref of the
        model when None, then the blobs no other manifest lists; returns entries removed.

        Cost: one scan of the cache's keys, and one read of every manifest in the cache to
        learn which blobs are still referenced.
        """
        check_name(name)
        if revision is None:
            revs = sorted({rev for _, rev in self._manifests(name)})
        else:
            try:
                revs = [self.resolve(name, revision)]
            except NotCachedError:
                revs = [check_revision(revision)]
        refs = self.refs(name)
        n = 0
        blobs: set[str] = set()
        for rev in revs:
            try:
                info = read_manifest(self.cache, name, rev)
            except CorruptEntryError:
                info = None
            n += self.cache.remove(manifest_key(name, rev))  # first: never half-complete
            if info is not None:
                blobs.update(info.key(f) for f in info.files if f.checksum)
            for key in list(self._keys(name, rev)):
                n += self.cache.remove(key)
        for ref, target in refs.items():
            if revision is None or target in revs:
                n += self.cache.remove(ref_key(name, ref))
        return n + self._drop_unreferenced(blobs)

    # -- reads ------------------------------------------------------------------------------

    def resolve(self, name: str, revision: str | None = None) -> str:
        """The stored revision a name means, as the hub resolves it: a ref (``main``), else
        a stored revision of that name (a full hash), else a unique prefix of one (at least
        4 hex digits). UsageError for an ambiguous prefix; an unknown name comes back
        unchanged (``info`` then raises NotCachedError)."""
        check_name(name)
        rev = check_revision(revision)
        key = ref_key(name, rev)
        target = self.cache.get(key)
        if isinstance(target, str):
            try:
                return check_revision(target)
            except UsageError:
                raise CorruptEntryError(self.cache.name, key, "bad ref") from None
        if manifest_key(name, rev) in self.cache or not _SHORT_HASH.fullmatch(rev):
            return rev
        found = sorted({r for _, r in self._manifests(name) if r.startswith(rev)})
        if len(found) > 1:
            raise UsageError(
                f"revision {rev!r} of model {name!r} is ambiguous: it starts " + ", ".join(found)
            )
        return found[0] if found else rev

    def info(self, name: str, revision: str | None = None) -> ModelInfo:
        """The complete revision's manifest (the name resolved like the hub's, see
        ``resolve``); NotCachedError when absent or incomplete."""
        rev = self.resolve(name, revision)
        info = read_manifest(self.cache, name, rev)
        if info is None:
            asked = check_revision(revision)
            shown = rev if asked == rev else f"{asked} ({rev})"
            raise NotCachedError(f"model {name}@{shown} is not in cache {self.cache.name!r}")
        return info

    def entry_key(self, name: str, revision: str | None, path: str) -> str:
        """The cache key holding one file of a stored revision (its blob)."""
        info = self.info(name, revision)
        for f in info.files:
            if f.path == path:
                return info.key(f)
        raise NotCachedError(f"model {name}@{info.revision} has no file {path!r}")

    def revisions(self, name: str) -> list[str]:
        """Complete revisions of ``name``, newest first (one scan of the cache's keys)."""
        check_name(name)
        found: list[tuple[float, str]] = []
        for _, rev in self._manifests(name):
            info = read_manifest(self.cache, name, rev)
            if info is not None:
                found.append((info.created, rev))
        return [rev for _, rev in sorted(found, reverse=True)]

    def _path(self, info: ModelInfo, f: ModelFile) -> Path:
        path = self.cache.get_path(info.key(f))
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
            key = info.key(f)
            if use_mmap:
                out.update(self._load_mmap(key, self._open(info, f)))
            else:
                out.update(self._load_read(key, self._path(info, f)))
        return out

    def _open(self, info: ModelInfo, f: ModelFile) -> Any:
        """The verified, open value file of one model file (NotCachedError when gone)."""
        found = self.cache.open_verified(info.key(f), True)
        if found is None or found.handle is None:
            raise NotCachedError(
                f"model {info.name}@{info.revision}: {f.path} is no longer in cache "
                f"{self.cache.name!r} (evicted?); put the model again"
            )
        meta = found.meta
        if f.checksum is not None and (meta.checksum, meta.digest.hex()) != (f.checksum, f.digest):
            found.handle.close()  # a blob named after other content (e.g. planted in Redis)
            self.cache.corrupt += 1
            raise CorruptEntryError(
                self.cache.name, info.key(f), "content does not match the digest it is named by"
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
        home = Path(self.cache.settings.path)
        view = PurePosixPath(SNAPSHOTS_DIR, info.name, info.revision)
        # one folder at a time, never through a link planted in the view tree
        base = make_dirs_inside(home, view, "model_path view folder", 0o777)
        wanted = {f.path: self._path(info, f) for f in info.files}
        for rel, target in wanted.items():
            link = base / check_relpath(rel)
            make_dirs_inside(base, PurePosixPath(rel).parent, "model_path view folder", 0o777)
            if leads_outside(base, link.parent):  # writes stay in snapshots/
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
