"""put / get / rm of single entries, as the CLI and scripts use them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from llamacache.errors import ExitCode, OptionError
from llamacache.manager import CacheManager
from llamacache.ops._report import Report

_MISS = object()


@dataclass(frozen=True)
class PutReport(Report):
    schema = "put"
    cache: str
    key: str
    kind: str  # "str" for a string value, "file" for a streamed file or stdin
    bytes: int
    digest: str | None = None


@dataclass(frozen=True)
class GetReport(Report):
    """A looked-up entry; ``value`` is None on a miss and is left out of the JSON form."""

    schema = "get"
    cache: str
    key: str
    found: bool
    type: str | None = None
    bytes: int | None = None
    path: Path | None = None  # set when the entry is a file that can be copied or mapped
    value: Any = None
    stream: BinaryIO | None = None  # the verified, open value file (with ``path``)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.pop("stream", None)
        out["value"] = _json_value(self.value) if self.found else None
        return out

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.found else ExitCode.PROBLEM

    def close(self) -> None:
        """Close the value file, if one was opened (``copy_entry_to`` does it too)."""
        if self.stream is not None:
            self.stream.close()


@dataclass(frozen=True)
class RemoveReport(Report):
    schema = "rm"
    cache: str
    removed: tuple[str, ...]
    missing: tuple[str, ...]
    missing_ok: bool = field(default=False, metadata={"json": False})  # absent keys exit 0

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PROBLEM if self.missing and not self.missing_ok else ExitCode.OK


def _json_value(value: Any) -> Any:
    from llamacache.ops._report import to_jsonable

    if isinstance(value, bytes):
        return None  # raw bytes have no faithful JSON form; use `get --out`
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy arrays and scalars
        return tolist()
    return to_jsonable(value)


def put_string(
    manager: CacheManager, cache: str, key: str, value: str, ttl: float | None
) -> PutReport:
    """Store a string value (what ``llamacache put KEY VALUE`` does)."""
    manager.cache(cache).put(key, value, ttl=ttl)
    return PutReport(cache=cache, key=key, kind="str", bytes=len(value.encode("utf-8")))


def put_stream(
    manager: CacheManager, cache: str, key: str, source: Path | BinaryIO, ttl: float | None
) -> PutReport:
    """Store a file or stream byte-for-byte, streamed (never read whole into memory)."""
    if isinstance(source, Path) and source.is_dir():
        raise OptionError("source", "is a directory; expected a file", value=str(source))
    if isinstance(source, Path) and not source.is_file():
        raise OptionError("source", "no such file", value=str(source))
    meta = manager.cache(cache).put_file(key, source, ttl=ttl)
    return PutReport(
        cache=cache, key=key, kind="file", bytes=meta.raw_len, digest=meta.digest.hex()
    )


def model_file_key(manager: CacheManager, cache: str, key: str) -> str | None:
    """The key of the blob holding a model file named ``MODEL@REVISION/PATH`` (the name
    ``warm`` shows; the revision resolved like ``ModelCache.info``), or None when ``key``
    names no file of a stored revision. Reads the revision's manifest."""
    from llamacache.errors import NotCachedError, UsageError
    from llamacache.ops._models import MODEL_KEY  # imports ml only for such a name

    m = MODEL_KEY.match(key)
    if m is None or "@" in m["model"]:
        return None
    from llamacache.ml.model import ModelCache

    try:
        return ModelCache(manager, cache).entry_key(m["model"], m["rev"], m["path"])
    except (NotCachedError, UsageError):
        return None


def get_entry(manager: CacheManager, cache: str, key: str) -> GetReport:
    """Look an entry up, verified before anything is returned; one access recorded.

    A raw file-backed entry comes back open (``stream``), its digest already checked, and
    is never read into memory; ``copy_entry_to`` copies it. A key no entry has that names
    a model file (``MODEL@REVISION/PATH``, as ``warm`` shows it) reads the blob holding
    that file's bytes. Raises CorruptEntryError.
    """
    tiered = manager.cache(cache)
    stored = key if key in tiered else (model_file_key(manager, cache, key) or key)
    return _get(manager, cache, key, stored)


def _get(manager: CacheManager, cache: str, key: str, stored: str) -> GetReport:
    """``get_entry`` of the entry stored under ``stored``, reported under ``key``."""
    tiered = manager.cache(cache)
    found = tiered.open_verified(stored, files_only=True)
    if found is not None and found.handle is not None:
        return GetReport(
            cache=cache,
            key=key,
            found=True,
            type="file",
            bytes=found.meta.raw_len,
            path=found.path,
            stream=found.handle,
        )
    value = tiered.get(stored, _MISS)
    if value is _MISS:
        return GetReport(cache=cache, key=key, found=False)
    size = len(value) if isinstance(value, (bytes, str)) else None
    return GetReport(
        cache=cache, key=key, found=True, type=type(value).__name__, bytes=size, value=value
    )


def copy_entry_to(result: GetReport, out: BinaryIO) -> int:
    """Write a found entry's (already verified) bytes to ``out``; returns bytes written."""
    if result.stream is not None:
        with result.stream as src:
            src.seek(0)
            shutil.copyfileobj(src, out, 4 * 1024 * 1024)
        return result.bytes or 0
    data = encode_for_output(result.value)
    out.write(data)
    return len(data)


def save_value(result: GetReport, target: Path) -> int:
    """Write a found value to the file ``target`` (owner-only, complete or not at all)."""
    from llamacache.ops import output

    written: int = output.write_file(target, lambda handle: copy_entry_to(result, handle))
    return written


def write_value(result: GetReport, out: BinaryIO) -> int:
    """Copy a found value to stdout ``out``: a string without a final newline gets one,
    as every other value printed as JSON does (and as ``echo`` would); bytes and files
    are copied byte-exact, never with a byte added."""
    written = copy_entry_to(result, out)
    value = result.value
    if isinstance(value, str) and not value.endswith("\n"):
        out.write(b"\n")
    return written


def looks_binary(result: GetReport) -> bool:
    """True when a found value would garble a terminal: a NUL or invalid UTF-8 near its start.

    Reads at most 8 KiB of a file entry (and seeks back); strings are never binary.
    """
    if result.stream is not None:
        head = result.stream.read(8192)
        result.stream.seek(0)
    elif isinstance(result.value, bytes):
        head = result.value[:8192]
    else:
        return False
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3  # a character cut at the 8 KiB mark is fine
    return False


def encode_for_output(value: Any) -> bytes:
    """Bytes and strings raw; anything else as JSON (numpy via tolist)."""
    import json

    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return (json.dumps(_json_value(value), default=repr) + "\n").encode("utf-8")


def remove_keys(
    manager: CacheManager, cache: str, keys: list[str], *, missing_ok: bool = False
) -> RemoveReport:
    """Remove keys from every tier of a cache; reports which were not there (a problem
    unless ``missing_ok``)."""
    tiered = manager.cache(cache)
    removed: list[str] = []
    missing: list[str] = []
    for key in keys:
        (removed if tiered.remove(key) else missing).append(key)
    return RemoveReport(
        cache=cache, removed=tuple(removed), missing=tuple(missing), missing_ok=missing_ok
    )
