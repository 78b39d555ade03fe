"""The object tier: large values as content-addressed blobs in S3-compatible storage.

Why a second shared tier: Redis keeps every shared byte in RAM on one server; model weights
are immutable and large, which is what object stores (AWS S3, MinIO, R2, Ceph, GCS's S3 API)
do well: disk-backed, parallel ranged reads, read-only credentials enforced by the server.

Layout under ``s3://bucket/prefix`` (every name is the engine's; nothing else writes here):

* ``blobs/<checksum>/<hex digest>`` -- one object per distinct value (the entry's stored
  payload, byte for byte), shared by every key, cache and machine: identical bytes are
  uploaded once. Uploaded as a multipart upload, which S3 makes visible only when complete.
* ``<cache>/e/<hex of the encoded key>`` -- the entry record: the same signed record the
  Redis tier writes (``netformat.pack_record``, type manifest) whose manifest lists the
  digest of every ``part_size`` part of the blob. Written last, after the blob is complete,
  so a killed upload is never visible as an entry.

Reads fetch the parts with parallel ranged GETs (obstore, in Rust), a window ahead of the
disk writer; each part is checked against the manifest and the whole value's digest is
checked before the last part is handed over, so a damaged blob is a miss and its bytes are
never indexed locally. Values under ``threshold`` are not stored here: they stay local (or
go to Redis, which is the right place for small, mutable values). The object tier has no
invalidation: use it for immutable entries (models, dataset shards).

A store that is down or throttling: obstore retries with backoff; when that fails the tier
misses and skips writes for ``retry_interval`` seconds, with one warning per interval.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections.abc import Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from llamacache.engine import checksums, framing
from llamacache.engine import netformat as nf
from llamacache.engine.protocol import ABSENT, UNKNOWN, ChunkMissing, TierStats
from llamacache.errors import ConfigError
from llamacache.redaction import redact_logger, redact_url
from llamacache.settings import ObjectSettings

log = redact_logger(logging.getLogger("llamacache.object"))

RETRY_INTERVAL = 5.0  # seconds the breaker stays open after a failure
WINDOW_BYTES = 64 * 1024 * 1024  # bytes fetched per window of parallel ranged GETs
MAX_DECLARED = 1 << 44  # largest value a record may declare (16 TiB)
UPLOAD_CONCURRENCY = 8  # parts uploaded at once
MIN_UPLOAD_PART = 5 * 1024 * 1024  # S3's smallest multipart part (but the last)
# model revision manifests and refs (ml/revisions.py names them): small, shared anyway
IMMUTABLE_SUFFIXES = ("/.manifest.json", "/.ref")
MAX_KEY_HEX = 800  # longer encoded keys are hashed (S3 names are at most 1024 bytes)


def missing_client(exc: ImportError) -> ConfigError:
    """The one message for a configured object tier without the obstore package."""
    return ConfigError(
        f"cache.object.url is set but the obstore package is missing ({exc}); "
        "install llamacache[object]"
    )


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def make_store(settings: ObjectSettings) -> Any:
    """An obstore S3Store for ``settings``; credentials come from the environment
    (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN, ...) or instance metadata, as the client finds them."""
    from obstore.store import S3Store

    bucket, prefix = split_url(settings.url)
    config: dict[str, Any] = {"virtual_hosted_style_request": not settings.path_style}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    if settings.region:
        config["region"] = settings.region
    client: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=settings.connect_timeout),
        "timeout": timedelta(seconds=settings.reply_timeout),
        "allow_http": bool(settings.endpoint and settings.endpoint.startswith("http://")),
    }
    retry: dict[str, Any] = {  # 503 SlowDown and connection errors: retried with backoff
        "max_retries": 3,
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=2),
        "backoff_base": 2.0,
        "retry_timeout": timedelta(seconds=settings.reply_timeout),
    }
    return S3Store(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        retry_config=retry,  # type: ignore[arg-type]
    )


def blob_path(checksum: str, digest: bytes) -> str:
    """Name of the blob holding the stored payload with this digest."""
    return f"blobs/{checksum}/{digest.hex()}"


def entry_dir(cache: str) -> str:
    """Folder of one cache's entry records."""
    return f"{cache}/e/"


def entry_name(key: Hashable) -> str:
    """The part of an entry record's name that names the key (hex: any key is a valid name)."""
    text = nf.encode_key(key).encode("utf-8", "surrogatepass").hex()
    if len(text) > MAX_KEY_HEX:
        return "h" + hashlib.sha256(text.encode()).hexdigest()
    return text


def key_text(name: str) -> str:
    """The cache key of an entry record name as people wrote it (hashed keys stay hashed)."""
    try:
        text = bytes.fromhex(name).decode("utf-8", "surrogatepass")
    except ValueError:
        return name
    key = nf.decode_key(text)
    return text if key is None else str(key)


def _is_down(exc: BaseException) -> bool:
    """True for failures that mean "cannot reach or use the store now" (not a missing object)."""
    return not isinstance(exc, FileNotFoundError | ChunkMissing | nf.BadRecord)


def _describe(exc: BaseException) -> str:
    """One readable line for an obstore error (its text spans many lines)."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if name in ("UnauthenticatedError", "PermissionDeniedError"):
        return f"credentials refused ({name}: check AWS_* variables or the profile; expired?)"
    return redact_url(f"{name}: {first}"[:300])


@dataclass(frozen=True)
class ObjectEntry:
    """One entry record as listed: its key, size of the value, blob and upload time."""

    key: str
    name: str  # the record's object name (relative to the store prefix)
    bytes: int  # stored payload length (0 when the record is unreadable)
    blob: str | None  # blob name it refers to (None: unreadable record)
    modified: float  # epoch seconds the record was written
    kind: str = "?"


@dataclass(frozen=True)
class ObjectCheck:
    """One entry as ``verify --tier object`` found it."""

    key: str
    problem: str | None  # None when intact
    bytes: int  # payload bytes read and checked


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob."""

    name: str
    bytes: int
    modified: float


class ObjectTier:
    """One named cache's object tier. Thread-safe; many machines may share the bucket.

    ``open_stream``/``get`` return None on a miss, an unreachable store or a rejected record;
    ``put`` returns False when the value was not stored (too small, read-only, store down).
    """

    def __init__(
        self,
        settings: ObjectSettings,
        cache: str,
        keys: tuple[bytes, ...] = (),
        *,
        store: Any = None,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.name = "object"
        self.settings = settings
        self.cache = cache
        self.url = settings.url
        self.read_only = settings.mode == "read-only"
        self.threshold = settings.threshold
        self.part_size = settings.part_size
        self.retry_interval = retry_interval
        self._keys = settings.keys or keys  # the first signs, every one verifies
        self._signing_key = self._keys[0] if self._keys else None
        self._part_algo = checksums.BY_NAME["blake3" if self._keys else "xxh3"]
        self.store = store if store is not None else make_store(settings)
        self._down_until = 0.0
        self._warned_at = -1e9
        self._lock = threading.Lock()
        self.hits = self.misses = self.puts = self.errors = self.corrupt = 0
        self.rejected = 0  # records or parts refused by verification
        self.uploaded_blobs = 0  # blobs this process uploaded (identical ones are not)
        self.skipped = 0  # values under the threshold (kept local)
        self.unshared = 0  # writes not sent: read-only or the store was down

    # -- names ------------------------------------------------------------------------------

    def entry_path(self, key: Hashable) -> str:
        """The object name of ``key``'s entry record."""
        return entry_dir(self.cache) + entry_name(key)

    # -- the breaker ------------------------------------------------------------------------

    def available(self) -> bool:
        """False while the breaker is open after a failure."""
        return time.monotonic() >= self._down_until

    def _trip(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + self.retry_interval
            self.errors += 1
            warn = now - self._warned_at >= self.retry_interval
            if warn:
                self._warned_at = now
        if warn:
            log.warning(
                "cache %r: object tier %s unreachable (%s); local tiers keep serving, "
                "retrying in %g s",
                self.cache,
                redact_url(self.url),
                _describe(exc),
                self.retry_interval,
            )

    def _reject(self, key: Hashable, why: str) -> None:
        self.rejected += 1
        self.corrupt += 1
        self.misses += 1
        log.warning("cache %r: object tier entry %r rejected: %s", self.cache, key, why)

    # -- reads ------------------------------------------------------------------------------

    def _record(self, key: Hashable) -> tuple[nf.Record, framing.EntryMeta] | None:
        if not self.available():
            self.misses += 1
            return None
        import obstore

        path = self.entry_path(key)
        try:
            data = bytes(obstore.get(self.store, path).bytes())
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception as exc:  # obstore's errors: unreachable, throttled, refused
            self.misses += 1
            self._trip(exc)
            return None
        try:
            rec, meta = nf.admit(path.encode(), data, self._keys, MAX_DECLARED)
        except nf.BadRecord as exc:
            self._reject(key, str(exc))
            return None
        return rec, meta

    def _peek(self, key: Hashable) -> bytes | str:
        """The stored record's entry meta (unauthenticated: a version check, never data),
        or ABSENT / UNKNOWN."""
        import obstore

        if not self.available():
            return UNKNOWN
        path = self.entry_path(key)
        try:
            data = bytes(obstore.get(self.store, path).bytes())
        except FileNotFoundError:
            return ABSENT
        except Exception as exc:
            self._trip(exc)
            return UNKNOWN
        meta = nf.peek_meta(data[: nf.PEEK_BYTES])
        return ABSENT if meta is None else meta

    def has(self, key: Hashable) -> bool:
        """True when the store holds a record for ``key`` (a HEAD; False when unreachable)."""
        if not self.available():
            return False
        try:
            return self._exists(self.entry_path(key))
        except Exception as exc:
            self._trip(exc)
            return False

    def compare(self, key: Hashable, meta: bytes) -> str:
        """ "same", "differs", ABSENT or UNKNOWN for a local copy with ``meta`` (``push``)."""
        theirs = self._peek(key)
        if not isinstance(theirs, bytes):
            return theirs
        try:
            a, b = framing.parse_meta(theirs), framing.parse_meta(meta)
        except ValueError:
            return "differs"
        return "same" if (a.digest, a.stored_len) == (b.digest, b.stored_len) else "differs"

    def shared_digest(self, key: Hashable) -> str | None:
        """Hex digest of the stored record's value, or None when there is none to read."""
        theirs = self._peek(key)
        if not isinstance(theirs, bytes):
            return None
        try:
            return framing.parse_meta(theirs).digest.hex()
        except ValueError:
            return None

    def open_stream(self, key: Hashable) -> tuple[bytes, int, Iterator[memoryview]] | None:
        """``(meta, total length, verified parts)`` or None on a miss.

        The iterator raises ChunkMissing for a part that is missing or damaged (and before
        the last part when the whole value's digest is wrong): the reader writes nothing.
        """
        found = self._record(key)
        if found is None:
            return None
        rec, meta = found
        if rec.rtype == nf.T_INLINE:  # admit checked its digest
            self.hits += 1
            return rec.meta, len(rec.body), iter((rec.body,))
        man = nf.unpack_manifest(rec.body)
        return rec.meta, man.total_len, self._parts(key, meta, man)

    def _parts(
        self, key: Hashable, meta: framing.EntryMeta, man: nf.Manifest
    ) -> Iterator[memoryview]:
        """The parts in windows of parallel ranged GETs, the next window fetched while the
        caller writes this one; every part checked against the signed manifest."""
        blob = blob_path(meta.checksum, meta.digest)
        whole = checksums.BY_NAME[meta.checksum].new()
        per = max(1, WINDOW_BYTES // man.chunk_size)
        windows = [range(s, min(man.count, s + per)) for s in range(0, man.count, per)]
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacache-object")
        try:
            ahead: Future[list[Any]] | None = pool.submit(self._fetch, blob, man, windows[0])
            seen = 0
            for n, window in enumerate(windows):
                assert ahead is not None
                try:
                    datas = ahead.result()
                except FileNotFoundError:
                    self._reject(key, f"blob {blob} is missing")
                    raise ChunkMissing(blob) from None
                except Exception as exc:
                    self.misses += 1
                    self._trip(exc)
                    raise ChunkMissing(f"object store unreachable: {_describe(exc)}") from None
                ahead = (
                    pool.submit(self._fetch, blob, man, windows[n + 1])
                    if n + 1 < len(windows)
                    else None
                )
                for i, data in zip(window, datas, strict=True):
                    view = memoryview(data)
                    expect = min(man.chunk_size, man.total_len - i * man.chunk_size)
                    if len(view) != expect or man.algo.digest(view) != man.digests[i]:
                        self._reject(key, f"part {i} of {blob} does not match its manifest")
                        raise ChunkMissing(f"{blob} part {i}")
                    seen += len(view)
                    whole.update(view)
                    if seen == man.total_len and whole.digest() != meta.digest:
                        self._reject(key, f"{blob}: assembled value digest mismatch")
                        raise ChunkMissing(f"{blob}: assembled value digest mismatch")
                    yield view
            if seen == man.total_len:
                self.hits += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, blob: str, man: nf.Manifest, window: range) -> list[Any]:
        return self._fetch_parts(blob, man, list(window))

    def get(self, key: Hashable) -> tuple[bytes, bytes] | None:
        """``(meta, payload)`` for ``key`` read whole (the cache streams instead)."""
        got = self.open_stream(key)
        if got is None:
            return None
        meta, _, parts = got
        try:
            return meta, b"".join(parts)
        except ChunkMissing:
            return None

    # -- writes -----------------------------------------------------------------------------

    def takes_size(self, nbytes: int) -> bool:
        """True when a raw file of ``nbytes`` goes to this tier: any size (files are
        immutable content, e.g. model weights), unless read-only."""
        return not self.read_only

    def takes(self, key: Hashable, entry: framing.EntryMeta) -> bool:
        """True for what this tier stores: values of at least ``threshold`` bytes, raw files
        (``put_file``: immutable content) and model revision manifests and refs (small, but
        a model is not shared without them). Other small values stay local or go to Redis."""
        if entry.stored_len >= self.threshold or entry.kind == "rawfile":
            return True
        return isinstance(key, str) and key.endswith(IMMUTABLE_SUFFIXES)

    def put(
        self,
        key: Hashable,
        meta: bytes,
        payload: bytes,
        expire: float | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Store a value of at least ``threshold`` bytes: blob (if absent), then the record."""
        return self.put_file(key, meta, BytesIO(payload), expire, only_if_absent)

    def put_stored(
        self,
        key: Hashable,
        meta: bytes,
        path: Path | None,
        inline: bytes | None,
        *,
        only_if_absent: bool = False,
    ) -> bool:
        """Share an entry as the disk tier holds it: a value file streamed, or inline bytes."""
        if path is not None:
            with open(path, "rb") as f:
                return self.put_file(key, meta, f, None, only_if_absent)
        return self.put(key, meta, inline or b"", None, only_if_absent)

    def put_file(
        self,
        key: Hashable,
        meta: bytes,
        source: BinaryIO,
        expire: float | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Upload what the store lacks, read from ``source`` one part at a time.

        The blob goes up as a multipart upload that is aborted (so never visible) when the
        bytes read do not hash to the entry's digest; the entry record is written last.
        ``expire`` is not applied: object expiry is the bucket's lifecycle rules' job.
        """
        import obstore

        entry = framing.parse_meta(meta)
        if not self.takes(key, entry):
            self.skipped += 1
            return False
        if self.read_only or not self.available():
            self.unshared += 1
            return False
        path = self.entry_path(key)
        blob = blob_path(entry.checksum, entry.digest)
        try:
            if only_if_absent and self._exists(path):
                return True
            if entry.stored_len < self.threshold:  # a manifest, a small file: inline
                body = source.read(entry.stored_len + 1)
                if len(body) != entry.stored_len or not framing.verify_payload(entry, body):
                    raise _Changed("its local bytes do not match their digest")
                parts = nf.pack_record(path.encode(), nf.T_INLINE, meta, body, self._signing_key)
                obstore.put(self.store, path, b"".join(parts))
                self.puts += 1
                return True
            if self._exists(blob, entry.stored_len):
                digests = self._digests(source, entry)
            else:
                digests = self._upload(blob, source, entry)
                self.uploaded_blobs += 1
            man = nf.Manifest(entry.stored_len, self.part_size, self._part_algo, tuple(digests))
            record = b"".join(
                nf.pack_record(path.encode(), nf.T_MANIFEST, meta, man.pack(), self._signing_key)
            )
            obstore.put(self.store, path, record)
        except _Changed as exc:
            log.warning("cache %r: %r not shared: %s", self.cache, key, exc)
            self.unshared += 1
            return False
        except Exception as exc:
            self.unshared += 1
            self._trip(exc)
            return False
        self.puts += 1
        return True

    def _exists(self, name: str, size: int | None = None) -> bool:
        import obstore

        try:
            head = obstore.head(self.store, name)
        except FileNotFoundError:
            return False
        return size is None or int(head["size"]) == size

    def _read_parts(
        self, source: BinaryIO, entry: framing.EntryMeta, digests: list[bytes]
    ) -> Iterator[bytes]:
        """Parts of ``source``, each digested; raises _Changed at the end if the bytes are not
        the entry's (a local file changed or damaged: nothing is published)."""
        whole = checksums.BY_NAME[entry.checksum].new()
        total = 0
        while data := source.read(self.part_size):
            digests.append(self._part_algo.digest(data))
            whole.update(data)
            total += len(data)
            if total == entry.stored_len and whole.digest() != entry.digest:
                raise _Changed("its local bytes do not match their digest")
            yield data
        if total != entry.stored_len:
            raise _Changed(f"its local file has {total} bytes, expected {entry.stored_len}")

    def _digests(self, source: BinaryIO, entry: framing.EntryMeta) -> list[bytes]:
        digests: list[bytes] = []
        for _ in self._read_parts(source, entry, digests):
            pass
        return digests

    def _upload(self, blob: str, source: BinaryIO, entry: framing.EntryMeta) -> list[bytes]:
        import obstore

        digests: list[bytes] = []
        obstore.put(
            self.store,
            blob,
            self._read_parts(source, entry, digests),
            chunk_size=max(self.part_size, MIN_UPLOAD_PART),
            max_concurrency=UPLOAD_CONCURRENCY,
        )
        if entry.stored_len == 0:
            digests = [self._part_algo.digest(b"")]
        return digests

    def remove(self, key: Hashable) -> bool:
        """Delete the entry record (its blob may be shared: ``clean`` sweeps unreferenced ones)."""
        if self.read_only or not self.available():
            return False
        import obstore

        path = self.entry_path(key)
        try:
            if not self._exists(path):
                return False
            obstore.delete(self.store, path)
        except Exception as exc:
            self._trip(exc)
            return False
        return True

    def clear(self) -> int:
        """Delete every entry record of this cache; returns how many went."""
        if self.read_only or not self.available():
            return 0
        import obstore

        names = [e.name for e in self._list(entry_dir(self.cache))]
        if names:
            obstore.delete(self.store, names)
        return len(names)

    # -- admin ------------------------------------------------------------------------------

    def _list(self, prefix: str | None) -> Iterator[BlobInfo]:
        import obstore

        for batch in obstore.list(self.store, prefix=prefix):
            for meta in batch:
                modified = meta["last_modified"]
                stamp = modified.timestamp() if isinstance(modified, datetime) else 0.0
                yield BlobInfo(str(meta["path"]), int(meta["size"]), stamp)

    def reachable(self) -> str | None:
        """None when the store answers a listing; else one line saying why not."""
        import obstore

        try:
            next(iter(obstore.list(self.store, prefix=entry_dir(self.cache), chunk_size=1)), None)
        except Exception as exc:
            return _describe(exc)
        return None

    def entries(self) -> Iterator[ObjectEntry]:
        """Every entry record of this cache, read without authenticating (for listing only)."""
        import obstore

        for info in self._list(entry_dir(self.cache)):
            name = info.name.rsplit("/", 1)[-1]
            try:
                data = bytes(obstore.get(self.store, info.name).bytes())
            except FileNotFoundError:
                continue
            try:
                rec = nf.unpack_record(info.name.encode(), data, None)
                meta = framing.parse_meta(rec.meta)
            except (nf.BadRecord, ValueError):
                yield ObjectEntry(key_text(name), info.name, 0, None, info.modified)
                continue
            inline = rec.rtype == nf.T_INLINE
            yield ObjectEntry(
                key_text(name),
                info.name,
                meta.stored_len,
                None if inline else blob_path(meta.checksum, meta.digest),
                info.modified,
                meta.kind,
            )

    def blobs(self) -> Iterator[BlobInfo]:
        """Every blob in the store (shared by all caches under the prefix)."""
        return self._list("blobs/")

    def referenced_blobs(self) -> set[str]:
        """Blob names any entry record under the prefix refers to (every cache's, signed or
        not: a record we cannot authenticate still keeps its blob)."""
        import obstore

        refs: set[str] = set()
        for info in self._list(None):
            if info.name.startswith("blobs/") or "/e/" not in info.name:
                continue
            try:
                data = bytes(obstore.get(self.store, info.name).bytes())
                rec = nf.unpack_record(info.name.encode(), data, None)
                meta = framing.parse_meta(rec.meta)
            except (FileNotFoundError, nf.BadRecord, ValueError):
                continue
            if rec.rtype == nf.T_MANIFEST:
                refs.add(blob_path(meta.checksum, meta.digest))
        return refs

    def clean_blobs(self, grace: float, dry_run: bool = False) -> list[BlobInfo]:
        """Delete blobs no entry refers to and older than ``grace`` seconds (an upload whose
        record is not written yet is younger). Returns what was (or would be) deleted."""
        import obstore

        now = datetime.now(timezone.utc).timestamp()
        refs = self.referenced_blobs()
        gone = [b for b in self.blobs() if b.name not in refs and now - b.modified >= grace]
        if gone and not dry_run and not self.read_only:
            obstore.delete(self.store, [b.name for b in gone])
        return gone

    def verify_entries(self, fraction: float | None = None) -> Iterator[ObjectCheck]:
        """Every entry through the read gate and its parts against the manifest.

        ``fraction``: read that share of each entry's parts, chosen at random (at least one),
        skipping the whole-value digest; None reads every byte. Writes nothing.
        """
        import obstore

        for info in self._list(entry_dir(self.cache)):
            key = key_text(info.name.rsplit("/", 1)[-1])
            try:
                data = bytes(obstore.get(self.store, info.name).bytes())
            except FileNotFoundError:
                continue
            try:
                rec, meta = nf.admit(info.name.encode(), data, self._keys, MAX_DECLARED)
            except nf.BadRecord as exc:
                yield ObjectCheck(key, str(exc), 0)
                continue
            if rec.rtype == nf.T_INLINE:  # admit checked it whole
                yield ObjectCheck(key, None, len(rec.body))
                continue
            yield self._check_blob(key, meta, nf.unpack_manifest(rec.body), fraction)

    def _check_blob(
        self, key: str, meta: framing.EntryMeta, man: nf.Manifest, fraction: float | None
    ) -> ObjectCheck:
        blob = blob_path(meta.checksum, meta.digest)
        picks = list(range(man.count))
        if fraction is not None:
            want = min(man.count, max(1, math.ceil(man.count * fraction)))
            picks = sorted(random.sample(picks, want))
        whole = checksums.BY_NAME[meta.checksum].new()
        seen = 0
        per = max(1, WINDOW_BYTES // man.chunk_size)
        for s in range(0, len(picks), per):
            window = picks[s : s + per]
            try:
                datas = self._fetch_parts(blob, man, window)
            except FileNotFoundError:
                return ObjectCheck(key, f"blob {blob} is missing", seen)
            for i, data in zip(window, datas, strict=True):
                view = memoryview(data)
                expect = min(man.chunk_size, man.total_len - i * man.chunk_size)
                if len(view) != expect or man.algo.digest(view) != man.digests[i]:
                    return ObjectCheck(key, f"part {i} of {blob} does not match its manifest", seen)
                whole.update(view)
                seen += len(view)
        if len(picks) == man.count and whole.digest() != meta.digest:
            return ObjectCheck(key, f"{blob}: assembled value digest mismatch", seen)
        return ObjectCheck(key, None, seen)

    def _fetch_parts(self, blob: str, man: nf.Manifest, parts: list[int]) -> list[Any]:
        import obstore

        if man.total_len == 0:
            return [b""]
        starts = [i * man.chunk_size for i in parts]
        lengths = [min(man.chunk_size, man.total_len - s) for s in starts]
        return list(
            obstore.get_ranges(self.store, blob, starts=starts, lengths=lengths, coalesce=0)
        )

    # -- lifecycle --------------------------------------------------------------------------

    def stats(self) -> TierStats:
        """Counters of this process (objects and bytes need a listing: see ops.object_admin)."""
        return TierStats("object", self.hits, self.misses, self.puts, 0, 0, self.corrupt, 0, 0)

    def close(self) -> None:
        """Nothing to stop: obstore's client pools close with the store."""


class _Changed(Exception):
    """A local value's bytes changed (or are damaged) while being uploaded."""
