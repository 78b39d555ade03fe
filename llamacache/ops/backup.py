"""`backup`: a consistent, checksummed snapshot of caches as one ``.tar.zst`` stream.

Entries come from the engine one index row at a time (``engine.transfer.export_entries``),
never by copying the live SQLite file: a row is committed or absent, and a value file
is renamed into place only when complete, so a backup taken while other processes
write never sees half an entry. An entry removed while the backup runs is skipped. The
engine parses and checks each header and verifies each payload (bound to its key, digest
matched) before backup sees a byte of it, so nothing unverified reaches the archive; this
module only packs those bytes and writes the manifest.

Archive layout (a tar stream, zstd-compressed, written to ``FILE.tmp`` and renamed):

* ``llamacache-backup/entries/00000001`` ... — each entry's stored payload, exactly the
  bytes the cache holds (already compressed by the cache's codec);
* ``llamacache-backup/manifest.json`` — last, because entries are streamed: per entry its
  cache, key (type + base64), header (``meta``, base64: kind, codec, checksum, digest),
  size, and store/expire times. ``restore`` trusts nothing it has not checked against it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import tarfile
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from llamacache import __version__
from llamacache.engine import transfer
from llamacache.errors import DiskFullError, ExitCode, OptionError
from llamacache.manager import CacheManager
from llamacache.ops._report import Report

PREFIX = "llamacache-backup"
MANIFEST = f"{PREFIX}/manifest.json"
ENTRY_DIR = f"{PREFIX}/entries/"
MANIFEST_SCHEMA = "llamacache.backup-manifest"
MANIFEST_VERSION = 1
ZSTD_LEVEL = 3

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class BackedUpCache:
    name: str
    entries: int
    bytes: int  # payload bytes as stored


@dataclass(frozen=True)
class BackupReport(Report):
    """What went into the archive; ``corrupt`` entries were left out (exit 1)."""

    schema = "backup"
    archive: Path
    archive_bytes: int
    caches: tuple[BackedUpCache, ...]
    entries: int
    vanished: int  # removed by another process while the backup ran
    corrupt: tuple[str, ...]  # "cache: key" of entries whose payload failed its checksum
    seconds: float

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PROBLEM if self.corrupt else ExitCode.OK


# -- keys --------------------------------------------------------------------------------------


_MAX_KEY_TEXT = 1 << 20  # a manifest key longer than this is refused (bounded memory)
_MAX_DEPTH = 32


def _typed(value: object, depth: int = 0) -> list[Any]:
    """A JSON-able, tagged form of a key made of plain values (raises TypeError otherwise)."""
    if depth > _MAX_DEPTH:
        raise TypeError("key nested too deeply")
    t = type(value)
    if value is None:
        return ["n"]
    if t is bool:
        return ["o", value]
    if t is int:
        return ["i", str(value)]
    if t is float:
        return ["f", repr(value)]
    if t is str:
        return ["s", value]
    if t is bytes:
        return ["b", base64.b64encode(value).decode()]  # type: ignore[arg-type]
    if t is tuple or t is frozenset:
        items = [_typed(v, depth + 1) for v in value]  # type: ignore[attr-defined]
        if t is frozenset:
            items.sort(key=json.dumps)
        return ["t" if t is tuple else "fs", items]
    raise TypeError(f"{t.__name__} is not a plain key type")


def _untyped(node: object, depth: int = 0) -> Hashable:
    """The key back from ``_typed``; ValueError for anything else (it is archive data)."""
    if depth > _MAX_DEPTH or not isinstance(node, list) or not node:
        raise ValueError("malformed typed key")
    tag, rest = node[0], node[1:]
    if tag == "n" and not rest:
        return None
    if len(rest) != 1:
        raise ValueError("malformed typed key")
    v = rest[0]
    if tag == "o" and type(v) is bool:
        return v
    if tag == "i" and isinstance(v, str):
        return int(v)
    if tag == "f" and isinstance(v, str):
        return float(v)
    if tag == "s" and isinstance(v, str):
        return v
    if tag == "b" and isinstance(v, str):
        return base64.b64decode(v, validate=True)
    if tag in ("t", "fs") and isinstance(v, list):
        items = [_untyped(x, depth + 1) for x in v]
        return tuple(items) if tag == "t" else frozenset(items)
    raise ValueError(f"unknown typed key tag {tag!r}")


def encode_key(key: Hashable) -> tuple[str, str]:
    """``(type, text)`` for the manifest: exact and code-free for str/bytes/int/float and
    tuples/frozensets of plain values ("typed"); only other objects are pickled."""
    t = type(key)
    if t is str:
        return "str", base64.b64encode(key.encode("utf-8", "surrogatepass")).decode()  # type: ignore[attr-defined]
    if t is bytes:
        return "bytes", base64.b64encode(key).decode()  # type: ignore[arg-type]
    if t is int:
        return "int", str(key)
    if t is float:
        return "float", repr(key)
    try:
        return "typed", json.dumps(_typed(key), separators=(",", ":"))
    except TypeError:
        return "pickle", base64.b64encode(pickle.dumps(key, protocol=5)).decode()


def decode_key(kind: str, text: str, *, allow_pickle: bool = False) -> Hashable:
    """The key back from the manifest; ValueError for an unknown type or malformed text.

    A pickled key runs code when loaded, so it is refused unless ``allow_pickle``
    (``restore --allow-pickle``, and only after every checksum passed).
    """
    if not isinstance(text, str) or len(text) > _MAX_KEY_TEXT:
        raise ValueError("key text missing or too long")
    if kind == "str":
        return base64.b64decode(text, validate=True).decode("utf-8", "surrogatepass")
    if kind == "bytes":
        return base64.b64decode(text, validate=True)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "typed":
        return _untyped(json.loads(text))
    if kind == "pickle":
        if not allow_pickle:
            raise ValueError("pickled key refused (allow_pickle, --allow-pickle, loads it)")
        key = pickle.loads(base64.b64decode(text, validate=True))
        hash(key)
        return key  # type: ignore[no-any-return]
    raise ValueError(f"unknown key type {kind!r}")


# -- writing -----------------------------------------------------------------------------------


class _Writer:
    """One archive being written: the tar stream, the manifest rows, the counters."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.rows: list[dict[str, Any]] = []
        self.vanished = 0
        self.corrupt: list[str] = []
        self.seq = 0

    def take(self, cache: str, item: transfer.ExportedEntry | transfer.ExportSkipped) -> int:
        """Archive one verified entry, or count why it was skipped; payload bytes written."""
        if isinstance(item, transfer.ExportSkipped):
            if item.reason == "vanished":
                self.vanished += 1
            else:
                self.corrupt.append(f"{cache}: {item.key!r}")
            return 0
        header = transfer.header_of(item)
        self.seq += 1
        name = f"{ENTRY_DIR}{self.seq:08d}"
        with item.handle as reader:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = header.size, 0o600, int(time.time())
            self.tar.addfile(info, reader)
        key_type, key_text = encode_key(item.key)
        self.rows.append(
            {
                "member": name,
                "cache": cache,
                "key_type": key_type,
                "key": key_text,
                "meta": base64.b64encode(item.meta).decode(),
                "kind": header.kind,
                "checksum": header.checksum,
                "digest": header.digest.hex(),
                "size": header.size,
                "store_time": item.store_time,
                "expire_time": item.expire_time,
            }
        )
        return header.size

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def _archive(target: Path) -> Iterator[tarfile.TarFile]:
    """A tar stream into ``target.tmp`` (zstd), fsynced and renamed over ``target`` on success."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        # 0600 whatever the umask: an archive holds every value (tokens, credentials...)
        with open(os.open(tmp, flags, 0o600), "wb") as raw:
            os.fchmod(raw.fileno(), 0o600)
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
            with (
                compressor.stream_writer(raw, closefd=False) as zw,
                tarfile.open(fileobj=zw, mode="w|", format=tarfile.GNU_FORMAT) as tar,
            ):
                yield tar
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"backup: no space left writing {target} ({tmp})") from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def backup(
    manager: CacheManager,
    to: Path,
    *,
    cache: str | None = None,
    progress: Progress | None = None,
) -> BackupReport:
    """Write every existing cache (or ``cache``) to ``to``; the old file is replaced on success.

    Every payload is verified by the engine before it is archived, then streamed into
    the tar (file-backed values in blocks, never whole). Costs one pass over the caches
    plus one hash pass per payload (a file's second read usually comes from the page cache).
    """
    t0 = time.monotonic()
    if cache is not None:  # a configured cache that was never used has nothing to back up
        names = [cache] if cache in manager.existing_names() else []
        manager.settings.cache(cache)  # unknown name: CacheNotFoundError (exit 2)
    else:
        names = manager.existing_names()
    if to.is_dir():
        raise OptionError(
            "to", "is a directory; give a file name such as caches.tar.zst", value=str(to)
        )
    if not to.parent.is_dir():
        raise OptionError("to", f"folder {to.parent} does not exist", value=str(to))
    total = sum(len(manager.cache(n)) for n in names)
    done = 0
    per_cache: list[BackedUpCache] = []
    with _archive(to) as tar:
        writer = _Writer(tar)
        for name in names:
            tiered = manager.cache(name)
            tiered.flush()
            count, size = len(writer.rows), 0
            for item in transfer.export_entries(tiered.disk):
                size += writer.take(name, item)
                done += 1
                if progress is not None:
                    progress(done, total)
            per_cache.append(BackedUpCache(name, len(writer.rows) - count, size))
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "schema_version": MANIFEST_VERSION,
            "created": time.time(),
            "llamacache_version": __version__,
            "caches": {c.name: {"entries": c.entries, "bytes": c.bytes} for c in per_cache},
            "entries": writer.rows,
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        writer.add_bytes(MANIFEST, body)
        writer.add_bytes(MANIFEST + ".sha256", hashlib.sha256(body).hexdigest().encode())
    return BackupReport(
        archive=to.absolute(),
        archive_bytes=to.stat().st_size,
        caches=tuple(per_cache),
        entries=len(writer.rows),
        vanished=writer.vanished,
        corrupt=tuple(writer.corrupt),
        seconds=time.monotonic() - t0,
    )
