"""The object tier: large values as content-addressed parts in S3-compatible storage.

Why a second shared tier: Redis keeps every shared byte in RAM on one server; model weights
are immutable and large, which is what object stores (AWS S3, MinIO, R2, Ceph, GCS's S3 API)
do well: disk-backed, parallel ranged reads, read-only credentials enforced by the server.

Layout under ``s3://bucket/prefix`` (every name is the engine's; nothing else writes here):

* ``parts/<algo>/<hex digest>`` -- one object per distinct ``part_size`` part of a value,
  named by the part's digest (blake3 when records are signed, else xxh3): shared by every
  key, cache and machine, so identical bytes are uploaded once (a HEAD first, then a PUT;
  parts go up in parallel). Separate objects rather than one multipart object because reads
  then cost the same per part on every S3 implementation, a part shared by two models is
  stored once, and what a killed upload leaves is visible to ``clean`` (an unfinished
  multipart upload is not, until a lifecycle rule aborts it).
* ``<cache>/e/<hex of the encoded key>`` -- the entry record: the same signed record the
  Redis tier writes (``netformat.pack_record``): a manifest listing every part's digest, or,
  for a small value (model manifests, refs, config files), the value inline. Written last,
  after every part is stored, so a killed upload is never visible as an entry.

Reads fetch the parts with parallel GETs (obstore, in Rust) kept ``WINDOW_BYTES`` ahead of
the disk writer; each part is checked against the manifest and the whole value's digest is
checked before the last part is handed over, so a damaged part is a miss and its bytes are
never indexed locally. Values under ``threshold`` other than files and model manifests are
not stored here: they stay local (or go to Redis, the place for small, mutable values). The
object tier has no invalidation: use it for immutable entries (models, dataset shards).

A store that is down or throttling: obstore retries with backoff; when that fails the tier
misses and skips writes for ``retry_interval`` seconds, with one warning per interval.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from llamacache.config.redaction import redact_logger, redact_text, redact_url
from llamacache.config.settings import ObjectSettings
from llamacache.engine import checksums, framing, protocol
from llamacache.engine import netformat as nf
from llamacache.engine.protocol import ABSENT, UNKNOWN, ChunkMissing, TierStats
from llamacache.errors import ConfigError

log = redact_logger(logging.getLogger("llamacache.object"))

RETRY_INTERVAL = 5.0  # seconds the breaker stays open after a failure
WINDOW_BYTES = 128 * 1024 * 1024  # bytes of GETs in flight ahead of the reader
PARALLEL_GETS = 16  # part GETs at once
PARALLEL_PUTS = 8  # part uploads at once
MAX_DECLARED = 1 << 44  # largest value a record may declare (16 TiB)
# model revision manifests and refs (ml/revisions.py names them): small, shared anyway
IMMUTABLE_SUFFIXES = ("/.manifest.json", "/.ref")
MAX_KEY_HEX = 800  # longer encoded keys are hashed (S3 names are at most 1024 bytes)


def missing_client(exc: ImportError) -> ConfigError:
    """The one message for a configured object tier without the obstore package."""
    return ConfigError(
        f"cache.object.url is set but the obstore package is missing ({exc}); "
        "install llamacache[object]"
    )


def stored_len(meta: bytes) -> int:
    """Bytes an entry with this header occupies (its stored payload)."""
    return framing.parse_meta(meta).stored_len


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def _aws_file(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / ".aws" / default)


def aws_profile() -> tuple[dict[str, Any] | None, str | None]:
    """Static keys and region of the AWS profile in the shared files, as the AWS CLI reads
    them: ``AWS_PROFILE`` (else ``default``) in ``AWS_SHARED_CREDENTIALS_FILE`` (else
    ``~/.aws/credentials``) and ``AWS_CONFIG_FILE`` (else ``~/.aws/config``).

    Keys in the environment win, as everywhere in AWS tooling: then only the region is read.
    A profile without static keys (SSO, a role, a credential process) gives None, leaving the
    client's own chain (web identity, instance metadata). A profile named in AWS_PROFILE that
    neither file holds is a ConfigError.
    """
    import configparser

    named = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
    profile = named or "default"
    found: dict[str, str] = {}
    seen = False
    for path, section in (
        (_aws_file("AWS_CONFIG_FILE", "config"), "default" if profile == "default" else ""),
        (_aws_file("AWS_CONFIG_FILE", "config"), f"profile {profile}"),
        (_aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), profile),
    ):
        if not section:
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the AWS file {path}: {exc}") from None
        if parser.has_section(section):
            seen = True
            found.update(parser.items(section))
    if named and not seen:
        raise ConfigError(
            f"AWS profile {named!r} (AWS_PROFILE) is in neither "
            f"{_aws_file('AWS_SHARED_CREDENTIALS_FILE', 'credentials')} nor "
            f"{_aws_file('AWS_CONFIG_FILE', 'config')}"
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or found.get("region")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return None, region
    key, secret = found.get("aws_access_key_id"), found.get("aws_secret_access_key")
    if not (key and secret):
        return None, region
    credential = {
        "access_key_id": key,
        "secret_access_key": secret,
        "token": found.get("aws_session_token"),
        "expires_at": None,
    }
    return credential, region


def make_store(settings: ObjectSettings) -> Any:
    """An obstore S3Store for ``settings``; credentials come from the environment
    (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN, ...), the AWS profile files (``aws_profile``) or
    instance metadata, in the order the AWS CLI looks."""
    from obstore.store import S3Store

    bucket, prefix = split_url(settings.url)
    config: dict[str, Any] = {"virtual_hosted_style_request": not settings.path_style}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    credential, region = aws_profile()
    if settings.region or region:
        config["region"] = settings.region or region
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
        credential_provider=(lambda: credential) if credential else None,  # type: ignore[arg-type]
    )


PARTS = "parts/"


def part_path(algo: checksums.Algorithm, digest: bytes) -> str:
    """Name of the object holding the part with this digest."""
    return f"{PARTS}{algo.name}/{digest.hex()}"


def part_names(man: nf.Manifest) -> list[str]:
    """The object names of a manifest's parts, in order."""
    return [part_path(man.algo, d) for d in man.digests]


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


# S3 error codes that mean "these credentials will not do", whatever the HTTP status
_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
     "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId"}
)  # fmt: skip


def describe_error(exc: BaseException) -> str:
    """One readable phrase for an obstore error (its text spans many lines and quotes the
    server's XML): "credentials refused (ExpiredToken): ..." or "unreachable (...)"."""
    name = type(exc).__name__
    text = str(exc)
    found = re.search(r"<Code>([A-Za-z]+)</Code>", text)
    code = found.group(1) if found else None
    status = re.search(r"status code: (\d{3})", text)
    refused = name in ("UnauthenticatedError", "PermissionDeniedError")
    if refused or code in _CREDENTIAL_CODES or (status and status.group(1) in ("401", "403")):
        why = code or (status.group(1) if status else name)
        return (
            f"credentials refused ({why}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
            "AWS_SESSION_TOKEN (or the machine's role); they may have expired"
        )
    if code:
        return f"unreachable (the store answered {code})"
    lines = text.strip().splitlines()
    return redact_text(f"unreachable ({name}: {lines[0] if lines else ''})")[:300]


@dataclass(frozen=True)
class ObjectEntry:
    """One entry record as listed: its key, size of the value, parts and upload time."""

    key: str
    name: str  # the record's object name (relative to the store prefix)
    bytes: int  # stored payload length (0 when the record is unreadable)
    parts: tuple[str, ...]  # part objects it refers to (none: inline or unreadable)
    modified: float  # epoch seconds the record was written
    kind: str = "?"


@dataclass(frozen=True)
class ObjectCheck:
    """One entry as ``verify --tier object`` found it."""

    key: str
    problem: str | None  # None when intact
    bytes: int  # payload bytes read and checked


@dataclass(frozen=True)
class StoredObject:
    """One object in the store, as a listing shows it."""

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
        self.uploaded_parts = self.uploaded_bytes = 0  # parts the store lacked, sent
        self.present_parts = 0  # parts already stored (by anyone): not sent again
        self.skipped = 0  # values under the threshold (kept local)
        self.unshared = 0  # writes not sent: read-only or the store was down

    @property
    def signed(self) -> bool:
        """True when records are signed and only authenticated ones may hold pickles."""
        return bool(self._keys)

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
                "cache %r: object tier %s %s; local tiers keep serving, retrying in %g s",
                self.cache,
                redact_url(self.url),
                describe_error(exc),
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
        """The parts in order, fetched by parallel GETs kept ``WINDOW_BYTES`` ahead of the
        caller (who writes them to disk meanwhile); each checked against the manifest."""
        whole = checksums.BY_NAME[meta.checksum].new()
        ahead = max(1, WINDOW_BYTES // man.chunk_size)
        pool = ThreadPoolExecutor(min(ahead, PARALLEL_GETS), thread_name_prefix="llamacache-get")
        pending: deque[Future[Any]] = deque()
        try:
            for i in range(min(ahead, man.count)):
                pending.append(pool.submit(self._fetch_checked, man, i))
            seen = 0
            for i in range(man.count):
                name = part_path(man.algo, man.digests[i])
                try:
                    data = pending.popleft().result()
                except FileNotFoundError:
                    self._reject(key, f"part {i} ({name}) is missing")
                    raise ChunkMissing(name) from None
                except _BadPart:
                    self._reject(key, f"part {i} ({name}) does not match its manifest")
                    raise ChunkMissing(name) from None
                except Exception as exc:
                    self.misses += 1
                    self._trip(exc)
                    raise ChunkMissing(f"object store: {describe_error(exc)}") from None
                if i + ahead < man.count:
                    pending.append(pool.submit(self._fetch_checked, man, i + ahead))
                view = memoryview(data)
                seen += len(view)
                whole.update(view)
                if seen == man.total_len and whole.digest() != meta.digest:
                    self._reject(key, "assembled value digest mismatch")
                    raise ChunkMissing(f"{key!r}: assembled value digest mismatch")
                yield view
            if seen == man.total_len:
                self.hits += 1
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

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

    def takes_meta(self, key: Hashable, meta: bytes) -> bool:
        """``takes`` for an entry header as the disk tier holds it (``push``), and we may write."""
        return not self.read_only and self.takes(key, framing.parse_meta(meta))

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
        """Store a value this tier takes: the parts the store lacks, then the record."""
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
        return protocol.put_stored(self, key, meta, path, inline, only_if_absent)

    def put_file(
        self,
        key: Hashable,
        meta: bytes,
        source: BinaryIO,
        expire: float | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Upload what the store lacks, read from ``source`` one part at a time.

        Parts go up in parallel; when the bytes read do not hash to the entry's digest (the
        local file changed or is damaged) the record is not written, so nothing is published.
        ``expire`` (a TTL) is not applied: entries stay until evicted (``evict --tier object``).
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
        try:
            if only_if_absent and self._exists(path):
                return True
            if entry.stored_len < self.threshold:  # a manifest, a small file: inline
                body = source.read(entry.stored_len + 1)
                if len(body) != entry.stored_len or not framing.verify_payload(entry, body):
                    raise _Changed("its local bytes do not match their digest")
                parts = nf.pack_record(path.encode(), nf.T_INLINE, meta, body, self._signing_key)
            else:
                digests = self._upload(source, entry)
                man = nf.Manifest(entry.stored_len, self.part_size, self._part_algo, digests)
                parts = nf.pack_record(
                    path.encode(), nf.T_MANIFEST, meta, man.pack(), self._signing_key
                )
            obstore.put(self.store, path, b"".join(parts))
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

    def _read_parts(self, source: BinaryIO, entry: framing.EntryMeta) -> Iterator[bytes]:
        """Parts of ``source``; raises _Changed before the last one if the bytes are not the
        entry's (a local file changed or damaged: nothing is published)."""
        whole = checksums.BY_NAME[entry.checksum].new()
        total = 0
        while data := source.read(self.part_size):
            whole.update(data)
            total += len(data)
            if total >= entry.stored_len and (
                total != entry.stored_len or whole.digest() != entry.digest
            ):
                raise _Changed("its local bytes do not match their digest")
            yield data
        if total != entry.stored_len:
            raise _Changed(f"its local file has {total} bytes, expected {entry.stored_len}")

    def _send_part(self, data: bytes) -> bytes:
        """Store one part under its digest unless the store has it; returns the digest."""
        import obstore

        digest = self._part_algo.digest(data)
        name = part_path(self._part_algo, digest)
        if self._exists(name, len(data)):
            with self._lock:
                self.present_parts += 1
            return digest
        obstore.put(self.store, name, data)
        with self._lock:
            self.uploaded_parts += 1
            self.uploaded_bytes += len(data)
        return digest

    def _upload(self, source: BinaryIO, entry: framing.EntryMeta) -> tuple[bytes, ...]:
        """Every part of ``source`` stored (at most 2 x PARALLEL_PUTS parts in memory)."""
        digests: list[bytes] = []
        pending: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(PARALLEL_PUTS, thread_name_prefix="llamacache-put") as pool:
            try:
                for data in self._read_parts(source, entry):
                    if len(pending) >= 2 * PARALLEL_PUTS:
                        digests.append(pending.popleft().result())
                    pending.append(pool.submit(self._send_part, data))
                while pending:
                    digests.append(pending.popleft().result())
            finally:
                for fut in pending:
                    fut.cancel()
        return tuple(digests)

    def remove(self, key: Hashable) -> bool:
        """Delete the entry record (its parts may be shared: ``clean`` sweeps unreferenced ones)."""
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

    def _list(self, prefix: str | None) -> Iterator[StoredObject]:
        import obstore

        for batch in obstore.list(self.store, prefix=prefix):
            for meta in batch:
                modified = meta["last_modified"]
                stamp = modified.timestamp() if isinstance(modified, datetime) else 0.0
                yield StoredObject(str(meta["path"]), int(meta["size"]), stamp)

    def reachable(self) -> str | None:
        """None when the store answers a listing; else one line saying why not."""
        import obstore

        try:
            next(iter(obstore.list(self.store, prefix=entry_dir(self.cache), chunk_size=1)), None)
        except Exception as exc:
            return describe_error(exc)
        return None

    def _read_record(self, name: str) -> tuple[nf.Record, framing.EntryMeta] | None:
        """An entry record parsed without authenticating it (for listing and for telling
        live parts from orphans, never for serving a value); None if gone or unreadable."""
        import obstore

        try:
            data = bytes(obstore.get(self.store, name).bytes())
            rec = nf.unpack_record(name.encode(), data, None)
            return rec, framing.parse_meta(rec.meta)
        except (FileNotFoundError, nf.BadRecord, ValueError):
            return None

    def entries(self) -> Iterator[ObjectEntry]:
        """Every entry record of this cache, read without authenticating (for listing only)."""
        for info in self._list(entry_dir(self.cache)):
            key = key_text(info.name.rsplit("/", 1)[-1])
            found = self._read_record(info.name)
            if found is None:
                yield ObjectEntry(key, info.name, 0, (), info.modified)
                continue
            rec, meta = found
            parts: tuple[str, ...] = ()
            if rec.rtype == nf.T_MANIFEST:
                with contextlib.suppress(nf.BadRecord):
                    parts = tuple(part_names(nf.unpack_manifest(rec.body)))
            yield ObjectEntry(key, info.name, meta.stored_len, parts, info.modified, meta.kind)

    def stored_parts(self) -> Iterator[StoredObject]:
        """Every part in the store (shared by all caches under the prefix)."""
        return self._list(PARTS)

    def referenced_parts(self) -> set[str]:
        """Part names any entry record under the prefix refers to (every cache's, signed or
        not: a record we cannot authenticate still keeps its parts)."""
        refs: set[str] = set()
        for info in self._list(None):
            if info.name.startswith(PARTS) or "/e/" not in info.name:
                continue
            found = self._read_record(info.name)
            if found is not None and found[0].rtype == nf.T_MANIFEST:
                try:
                    refs.update(part_names(nf.unpack_manifest(found[0].body)))
                except nf.BadRecord:
                    continue
        return refs

    def clean_parts(self, grace: float, dry_run: bool = False) -> list[StoredObject]:
        """Delete parts no entry refers to and older than ``grace`` seconds (an upload whose
        record is not written yet has young parts). Returns what was (or would be) deleted."""
        import obstore

        now = datetime.now(timezone.utc).timestamp()
        refs = self.referenced_parts()
        gone = [p for p in self.stored_parts() if p.name not in refs and now - p.modified >= grace]
        if gone and not dry_run and not self.read_only:
            obstore.delete(self.store, [p.name for p in gone])
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
            yield self._check_parts(key, meta, nf.unpack_manifest(rec.body), fraction)

    def _check_parts(
        self, key: str, meta: framing.EntryMeta, man: nf.Manifest, fraction: float | None
    ) -> ObjectCheck:
        picks = list(range(man.count))
        if fraction is not None:
            want = min(man.count, max(1, math.ceil(man.count * fraction)))
            picks = sorted(random.sample(picks, want))
        whole = checksums.BY_NAME[meta.checksum].new()
        seen = 0
        per = max(1, min(PARALLEL_GETS, WINDOW_BYTES // man.chunk_size))
        with ThreadPoolExecutor(per, thread_name_prefix="llamacache-verify") as pool:
            for s in range(0, len(picks), per):
                window = picks[s : s + per]
                futures = [pool.submit(self._fetch_parts, man, [i]) for i in window]
                for i, fut in zip(window, futures, strict=True):
                    name = part_path(man.algo, man.digests[i])
                    try:
                        (data,) = fut.result()
                    except FileNotFoundError:
                        return ObjectCheck(key, f"part {i} ({name}) is missing", seen)
                    view = memoryview(data)
                    expect = min(man.chunk_size, man.total_len - i * man.chunk_size)
                    if len(view) != expect or man.algo.digest(view) != man.digests[i]:
                        problem = f"part {i} ({name}) does not match its manifest"
                        return ObjectCheck(key, problem, seen)
                    whole.update(view)
                    seen += len(view)
        if len(picks) == man.count and whole.digest() != meta.digest:
            return ObjectCheck(key, "assembled value digest mismatch", seen)
        return ObjectCheck(key, None, seen)

    def _fetch_checked(self, man: nf.Manifest, i: int) -> Any:
        """Part ``i``, checked against the manifest here, in a fetching thread (the hashing
        then runs beside the disk writer); raises _BadPart."""
        (data,) = self._fetch_parts(man, [i])
        expect = min(man.chunk_size, man.total_len - i * man.chunk_size)
        if len(data) != expect or man.algo.digest(data) != man.digests[i]:
            raise _BadPart(i)
        return data

    def _fetch_parts(self, man: nf.Manifest, parts: list[int]) -> list[Any]:
        """The bytes of the given parts (one GET each, in this thread)."""
        import obstore

        return [obstore.get(self.store, part_path(man.algo, man.digests[i])).bytes() for i in parts]

    # -- lifecycle --------------------------------------------------------------------------

    def stats(self) -> TierStats:
        """Counters of this process (objects and bytes need a listing: see ops.object_admin)."""
        return TierStats("object", self.hits, self.misses, self.puts, 0, 0, self.corrupt, 0, 0)

    def close(self) -> None:
        """Nothing to stop: obstore's client pools close with the store."""


class _BadPart(Exception):
    """A fetched part that does not match its manifest digest."""


class _Changed(Exception):
    """A local value's bytes changed (or are damaged) while being uploaded."""
