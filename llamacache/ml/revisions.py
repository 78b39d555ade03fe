"""A model revision's stored form: names, keys, manifests, refs and content-addressed blobs.

Content addressing, as the hub's own cache does with ``blobs/``: every distinct file body is
one raw file entry ``blobs/{checksum}/{digest}{suffix}`` (``TieredCache.put_file``: streamed,
digest recorded, stored byte-for-byte, so ``get_path`` hands out a path that can be
memory-mapped). Two revisions (or two models) with the same ``model.safetensors`` share one
entry, so its bytes are stored, counted by ``inspect`` and evicted once. The suffix (e.g.
``.safetensors``) keeps ``verify``'s format check and key filters working on weights.

A revision is a small manifest ``{model}@{revision}/.manifest.json`` listing each file's
path, size, checksum and digest (so the blob it uses). Manifests are data, not paths: every
row is validated when written and when read (it may come from a shared tier or an archive).
A row without a checksum (written before blobs) names the entry ``{model}@{revision}/{path}``.
A ref ``{model}@{ref}/.ref`` (``warm`` records a hub repo's ``refs/``) names a revision.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from llamacache.engine import EntryMeta, checksums, decode, index
from llamacache.errors import CacheIOError, CorruptEntryError, LlamacacheError, UsageError

if TYPE_CHECKING:  # only a parameter type: verify reads manifests without the tiered stack
    from llamacache.engine.tiered import TieredCache

DEFAULT_REVISION = "main"
MANIFEST = ".manifest.json"
REF = ".ref"  # a ref entry's file name: {model}@{ref}/.ref holds the commit it names
BLOBS = "blobs"  # blob keys: blobs/{checksum}/{hex digest}{suffix}
_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]{1,32}")
BLOCK = 4 * 1024 * 1024


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
    if rel in (MANIFEST, REF):
        raise UsageError(f"model file path {rel!r} is reserved for llamacache's manifest")
    return rel


def file_key(name: str, revision: str, rel: str) -> str:
    return f"{name}@{revision}/{rel}"


def manifest_key(name: str, revision: str) -> str:
    return f"{name}@{revision}/{MANIFEST}"


def ref_key(name: str, ref: str) -> str:
    return f"{name}@{ref}/{REF}"


def blob_key(checksum: str, digest: str, rel: str) -> str:
    """The key of the blob holding a file's bytes: its checksum, digest and file suffix."""
    suffix = PurePosixPath(rel).suffix
    return f"{BLOBS}/{checksum}/{digest}{suffix if _SUFFIX.fullmatch(suffix) else ''}"


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative, posix
    size: int
    digest: str  # hex, with ``checksum``
    checksum: str | None = None  # None: an old manifest row (entry {model}@{rev}/{path})


@dataclass(frozen=True)
class ModelInfo:
    name: str
    revision: str
    files: tuple[ModelFile, ...]
    created: float  # epoch seconds the manifest was written

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def key(self, f: ModelFile) -> str:
        """The cache key holding ``f``'s bytes (a blob, or an old per-revision entry)."""
        if f.checksum is None:
            return file_key(self.name, self.revision, f.path)
        return blob_key(f.checksum, f.digest, f.path)


def write_manifest(
    cache: TieredCache,
    name: str,
    revision: str,
    files: Mapping[str, EntryMeta | ModelFile],
    *,
    share: bool = True,
    files_shared: bool | None = None,
) -> ModelInfo:
    """Record a revision as complete (call only after every file is stored). ``share=False``
    keeps it on this machine (``warm --share``: a file of it could not be shared).
    ``files_shared``: what ``share_files`` answered already (else it is asked here)."""
    for rel in files:
        check_relpath(rel)
    info = _info(name, revision, files)
    body = {
        "model": name,
        "revision": revision,
        "created": info.created,
        "files": [_row(f) for f in info.files],
    }
    # Published only when every file is: a manifest naming a file that was too large to
    # share, or that the server lost since it was stored here (a flush, eviction), would
    # send other machines to "not cached" (``push`` re-checks the files).
    if share and files_shared is None:
        files_shared = share_files(cache, info)
    share = share and files_shared is not False
    cache.put(manifest_key(name, revision), json.dumps(body), share=share)
    return info


def _info(name: str, revision: str, files: Mapping[str, EntryMeta | ModelFile]) -> ModelInfo:
    rows = (
        m if isinstance(m, ModelFile) else ModelFile(rel, m.raw_len, m.digest.hex(), m.checksum)
        for rel, m in files.items()
    )
    return ModelInfo(name, revision, tuple(sorted(rows, key=lambda f: f.path)), time.time())


def share_files(
    cache: TieredCache, info: ModelInfo | tuple[str, str, Mapping[str, EntryMeta | ModelFile]]
) -> bool | None:
    """Whether the shared tier holds every file a manifest lists as the disk tier does; a
    file it lacks (absent, or removed there) is uploaded again from the disk tier first.
    False when a file is too large to share, not there or differs; None when the server
    cannot tell (unreachable: the manifest's own put then fails and is re-shared later, as
    any write is). ``info`` is a ModelInfo or ``(name, revision, files)``.

    Costs one small read (GETRANGE of a record's head) per file, plus the upload of what
    is missing: call it outside any lock.
    """
    if not isinstance(info, ModelInfo):
        info = _info(*info)
    if not all(cache.shares_size(f.size) for f in info.files):
        return False
    if not cache.lower:
        return True
    from llamacache.engine.network import NetworkTier  # imported already with the tier
    from llamacache.engine.protocol import ABSENT, DELETED, UNKNOWN

    for net in (t for t in cache.lower if isinstance(t, NetworkTier)):
        for f in info.files:
            key = info.key(f)
            found = cache.disk.locate(key)
            if found is None:
                return False
            verdict = net.compare(key, found[0])
            if verdict == UNKNOWN:
                return None
            if verdict == "same":
                continue
            if verdict not in (ABSENT, DELETED) or not net.shareable(found[0]):
                return False
            if not net.put_stored(key, *found, only_if_absent=True):
                return None if not net.available() else False
    return True


def write_ref(cache: TieredCache, name: str, ref: str, revision: str) -> None:
    """Point ``ref`` (e.g. ``main``) at a stored revision, as a hub repo's ``refs/<ref>``."""
    cache.put(ref_key(check_name(name), check_revision(ref)), check_revision(revision))


def _row(f: ModelFile) -> dict[str, Any]:
    row: dict[str, Any] = {"path": f.path, "size": f.size, "digest": f.digest}
    if f.checksum is not None:
        row["checksum"] = f.checksum
    return row


def _manifest_file(row: object) -> ModelFile:
    """One validated manifest row (a row is data: its path is checked like user input)."""
    if not isinstance(row, dict):
        raise TypeError("a file row is not an object")
    size, digest = row["size"], row["digest"]
    if type(size) is not int or size < 0:
        raise ValueError(f"size {size!r} is not a byte count")
    if not isinstance(digest, str) or not digest or len(digest) > 128:
        raise ValueError(f"digest {digest!r} is not a hex digest")
    if digest != bytes.fromhex(digest).hex():  # lower-case hex only: it becomes a key
        raise ValueError(f"digest {digest!r} is not lower-case hex")
    algo = row.get("checksum")
    if algo is not None:
        found = checksums.BY_NAME.get(algo) if isinstance(algo, str) else None
        if found is None or len(digest) != 2 * found.digest_size:
            raise ValueError(f"checksum {algo!r} with digest {digest!r} names no blob")
    return ModelFile(check_relpath(row["path"]), size, digest, algo)


def parse_manifest(raw: str, cache: str, name: str, revision: str) -> ModelInfo:
    """A manifest's text as a ModelInfo, every row validated (CorruptEntryError otherwise)."""
    try:
        body = json.loads(raw)
        files = tuple(_manifest_file(f) for f in body["files"])
        if len({f.path for f in files}) != len(files):
            raise ValueError("a path is listed twice")
        return ModelInfo(name, revision, files, float(body["created"]))
    except (ValueError, KeyError, TypeError) as exc:  # UsageError is a ValueError too
        key = manifest_key(name, revision)
        raise CorruptEntryError(cache, key, f"bad manifest: {exc}") from None


def read_manifest(cache: TieredCache, name: str, revision: str) -> ModelInfo | None:
    raw = cache.get(manifest_key(name, revision))
    if not isinstance(raw, str):
        return None
    return parse_manifest(raw, cache.name, name, revision)


def stored_manifest(cache: TieredCache, name: str, revision: str) -> ModelInfo | None:
    """The manifest as the disk tier holds it now (not a memory-front copy, which another
    process may have replaced): what blob removal must consult. CorruptEntryError for a
    manifest that does not verify or parse."""
    key = manifest_key(name, revision)
    found = cache.disk.get(key)
    if found is None:
        return None
    raw = decode(found[0], found[1], cache.name, key)
    return parse_manifest(raw, cache.name, name, revision) if isinstance(raw, str) else None


def hash_source(source: Path | Any, algo: str) -> tuple[bytes, int]:
    """``(digest, size)`` of a file (path) or a ``readinto`` stream: one sequential pass in
    4 MiB blocks. CacheIOError names a file that cannot be read."""
    hasher = checksums.hasher(algo)
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    size = 0
    try:
        f = open(source, "rb", buffering=0) if isinstance(source, Path) else source  # noqa: SIM115
    except OSError as exc:
        raise CacheIOError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        while n := f.readinto(view):
            hasher.update(view[:n])
            size += n
    except OSError as exc:
        raise CacheIOError(f"cannot read {source}: {exc.strerror or exc}") from None
    finally:
        if isinstance(source, Path):
            f.close()
    return hasher.digest(), size


def find_blob(cache: TieredCache, rel: str, digest: bytes, size: int) -> EntryMeta | None:
    """The header of the blob already holding these bytes, else None (reads one index row:
    no file read, no hit recorded). The stored bytes are verified when they are read."""
    algo = cache.settings.checksum
    found = cache.disk.describe(blob_key(algo, digest.hex(), rel))
    meta = None if found is None else index.rawfile_meta(found.meta, found.path)
    same = meta is not None and meta.digest == digest and meta.checksum == algo
    return meta if same and meta is not None and meta.raw_len == size else None


def store_blob(
    cache: TieredCache, rel: str, source: Any, digest: bytes | None = None, size: int = -1
) -> tuple[EntryMeta, bool]:
    """Store a file's bytes once: ``(header, True)`` when written, ``(header, False)`` when a
    blob with ``digest``/``size`` (from ``hash_source`` over the same source) was already
    there (nothing read or written). Without a digest the file is copied and hashed in one
    pass and named after what was read (``TieredCache.put_file_as``)."""
    if digest is not None:
        found = find_blob(cache, rel, digest, size)
        if found is not None:
            return found, False
    algo = cache.settings.checksum
    _, meta = cache.put_file_as(lambda d: blob_key(algo, d.hex(), rel), source)
    return meta, True


def listed_files(cache: TieredCache) -> Iterator[ModelFile]:
    """Every file row of every readable manifest in the cache. Reads each manifest's index
    row (verified), records no access: looking is not a use."""
    for key in cache.disk.iter_keys():
        if not isinstance(key, str) or not key.endswith("/" + MANIFEST):
            continue
        model, at, rev = key[: -len(MANIFEST) - 1].partition("@")
        found = cache.disk.describe(key) if at and rev and "/" not in rev else None
        if found is None or found.inline is None:
            continue
        try:
            text = decode(found.meta, found.inline, cache.name, key)
            if isinstance(text, str):
                yield from parse_manifest(text, cache.name, model, rev).files
        except (LlamacacheError, ValueError):
            continue


def listed_blobs(cache: TieredCache) -> set[str] | None:
    """Keys of every blob some manifest on the disk tier lists; None when a manifest there
    cannot be read or parsed (then any blob may be listed, and none may be removed).
    Reads every manifest (verified); records no access: looking is not a use."""
    out: set[str] = set()
    for key in cache.disk.iter_keys():
        if not isinstance(key, str) or not key.endswith("/" + MANIFEST):
            continue
        model, at, rev = key[: -len(MANIFEST) - 1].partition("@")
        if not at or not rev or "/" in rev:
            continue
        info: ModelInfo | None
        try:
            found = cache.disk.describe(key)
            if found is None:
                continue
            if found.inline is not None:  # a small manifest: in the index row
                text = decode(found.meta, found.inline, cache.name, key)
                if not isinstance(text, str):
                    return None
                info = parse_manifest(text, cache.name, model, rev)
            else:  # a manifest of many files is a value file
                info = stored_manifest(cache, model, rev)
        except (LlamacacheError, ValueError):
            return None
        if info is None:  # removed since the key was listed
            continue
        out.update(info.key(f) for f in info.files if f.checksum)
    return out


def drop_unlisted(
    cache: TieredCache, rows: Sequence[tuple[str, int, float, int]]
) -> tuple[int, int, list[str]]:
    """Remove the blob rows ``(key, rowid, store_time, size)`` that no manifest lists now:
    the bytes of a file leave with the last revision that lists them. Returns ``(entries
    removed, bytes freed, keys kept)``; a blob listed again, rewritten or gone is kept.

    Holds the index's writer lock from the look at every manifest to the last removal;
    ``ModelCache.put_model`` publishes a manifest under that lock after checking its blobs
    are there (storing again any that vanished), so no published manifest ever lists a
    blob removed here, another process's included. Cost: reads every manifest.
    """
    if not rows:
        return 0, 0, []
    with cache.disk.transaction():
        listed = listed_blobs(cache)
        if listed is None:
            return 0, 0, [key for key, *_ in rows]
        free = [r for r in rows if r[0] not in listed]
        done, missed = cache.disk.remove_rows((rowid, t, n) for _, rowid, t, n in free)
    gone = set(missed)
    kept = [key for key, rowid, *_ in rows if key in listed or rowid in gone]
    return done.count, done.bytes, kept
