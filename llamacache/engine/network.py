"""The shared tier: framed entries on a real Redis (or Valkey) server, below memory and disk.

Moves ``(meta, payload)`` bytes only — nothing that crosses the network is unpickled here.
A shared Redis is a shared attack surface: anyone who can write to it can write a record.
So every read passes ``netformat.admit``: a record not authenticated by one of our HMAC
keys may only hold kinds that decode without running code, and a record that fails any
check is a *network miss* (counted, warned about once, listed by ``verify --tier
network``), never an error and never a reason to delete anything. Without a signing key,
pickled values are not shared at all: they stay in the local tiers.

Large values go as content-addressed chunks written in pipelined batches of at most
``batch_bytes``, streamed from the disk tier's file, and the manifest is written last with
``SET NX``: a writer killed mid-upload leaves orphan chunks (``clean`` sweeps them), never a
manifest pointing at missing data. A missing or mismatching chunk (Redis evicts single keys
under ``allkeys-lru``) is a miss plus a counter, never a short or corrupt value.

When the server is down the tier misses and skips writes; it warns once per
``retry_interval`` and does not try again until that interval has passed (a circuit
breaker), so local tiers keep serving at local speed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import redis

from llamacache.config.redaction import redact_logger
from llamacache.config.settings import NetworkSettings
from llamacache.engine import checksums, framing, protocol
from llamacache.engine import netformat as nf
from llamacache.engine.netclient import DOWN, EchoCounter, as_bytes, connection_pool, redact
from llamacache.engine.protocol import ABSENT, DELETED, UNKNOWN, ChunkMissing, TierStats
from llamacache.engine.sentinel_url import SCHEME as SENTINEL_SCHEME
from llamacache.errors import ConfigError, NetworkTierError

log = redact_logger(logging.getLogger("llamacache.network"))
_warned: set[str] = set()  # one warning per process and kind of event


def _warn_once(what: str, message: str, *args: object) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning(message, *args)


@dataclass(frozen=True)
class RecordCheck:
    """One shared entry record as ``NetworkTier.verify_records`` found it."""

    key: str  # the cache key as people wrote it (a hashed key shows as its ``h:<sha256>``)
    problem: str | None  # None when intact; "bad signature", "missing chunk 3 (...)", ...
    bytes: int  # payload bytes read and checked


@dataclass(frozen=True)
class RecordShape:
    """How one shared entry is stored, read from its record without checking it."""

    kind: str  # framing kind: bytes, str, numpy, pickle, rawfile ("?" if unreadable)
    chunked: bool
    bytes: int  # stored payload length (the record's own length when unreadable)
    chunks_address: str | None  # "<digest>.<chunk size>" of a chunked value's chunks


DELETE_MARK_SECONDS = 7 * 86400  # how long a remove is remembered for revalidating copies
BATCH_BYTES = 16 * 1024 * 1024  # bytes per pipelined batch of chunks (bounds memory)
RETRY_INTERVAL = 5.0  # seconds the breaker stays open after a failure
SENTINEL_RETRY = 0.5  # behind Sentinel a failure is usually a failover: retry sooner


def _withdrawn_mark(meta: bytes) -> bytes:
    """The deletion mark ``withdraw`` leaves: the digest of the value that replaced the
    shared one (b"1", a plain removal, when the header cannot be read)."""
    try:
        return b"v:" + framing.parse_meta(meta).digest.hex().encode()
    except ValueError:
        return b"1"


def same_version(theirs: bytes, ours: bytes) -> bool:
    """True when two entry headers describe the same stored value (digest and length)."""
    try:
        a, b = framing.parse_meta(theirs), framing.parse_meta(ours)
    except ValueError:
        return False
    return (a.digest, a.stored_len) == (b.digest, b.stored_len)


class NetworkTier:
    """One named cache's shared tier. Thread-safe; many processes and machines may share it.

    ``get`` returns None on a miss, a missing chunk, an unreachable server or a rejected
    record (bad signature, unsigned pickle, damaged). ``put`` raises NetworkTierError only
    under ``write_error_policy = "all"``; a pickled value without a signing key is not
    shared (``unsigned_skipped`` counts them).
    """

    def __init__(
        self,
        settings: NetworkSettings,
        cache: str,
        *,
        batch_bytes: int = BATCH_BYTES,
        retry_interval: float = RETRY_INTERVAL,
        listen: bool = True,
    ) -> None:
        self.name = "network"
        self.settings = settings
        self.cache = cache
        self.url = settings.url
        self.prefix = nf.cache_prefix(settings.key_prefix, cache)
        self.entry_prefix = nf.entry_prefix(settings.key_prefix, cache)
        self.deleted_prefix = nf.deleted_prefix(settings.key_prefix, cache)
        self.read_only = settings.mode == "read-only"
        self.chunk_size = settings.chunk_size
        self.batch_bytes = max(batch_bytes, settings.chunk_size)
        self.retry_interval = retry_interval
        self._keys = settings.keys  # the first signs, every one verifies
        self._signing_key = self._keys[0] if self._keys else None
        self._chunk_algo = checksums.BY_NAME["blake3" if self._keys else "xxh3"]
        pool = connection_pool(self.url, settings.connect_timeout, settings.reply_timeout)
        self.client = redis.Redis(connection_pool=pool)
        self._down_until = 0.0
        self._warned_at = -1e9
        self._echoes = EchoCounter()  # entry keys we are writing: their echo is not news
        self.hits = self.misses = self.puts = self.errors = self.corrupt = 0
        self.chunk_misses = self.skipped = 0
        self.rejected = 0  # records refused by the read gate (also counted in ``corrupt``)
        self.read_errors = 0  # error replies to reads (MOVED, WRONGTYPE, NOPERM...): misses
        self.unshared = 0  # writes that did not reach the server (retried by the cache)
        self.unsigned_skipped = 0  # pickled values kept local: no key to sign them with
        self._listen = listen
        self.listener: Any = None
        self._refuse_cluster()

    def _refuse_cluster(self) -> None:
        """A Redis Cluster node is refused at start (ConfigError, exit 2), not at first use.

        Invalidation tracking is per node and a cluster node answers keys of other slots
        with MOVED; one server (or Sentinel-free replication behind one address) is what
        this tier supports. An unreachable server is not an error here: reads miss.
        """
        try:
            info = self.client.info("cluster")
        except redis.RedisError:  # unreachable: the first read or write will say so
            return
        if isinstance(info, dict) and str(info.get("cluster_enabled", "0")) == "1":
            raise ConfigError(
                f"cache.network.url: {redact(self.url)} is a Redis Cluster node; the shared "
                "tier needs a single Redis server (cluster mode is not supported)"
            )

    # -- keys -------------------------------------------------------------------------------

    def rkey(self, key: Hashable) -> str:
        """The Redis key of ``key``'s entry record."""
        return self.entry_prefix + nf.encode_key(key)

    def bind_front(
        self,
        on_invalidate: Callable[[Hashable], None],
        on_reset: Callable[[], None],
        heartbeat: float = 0.5,
    ) -> None:
        """Start the invalidation listener feeding a memory front (TieredCache calls this).

        It PINGs every ``heartbeat`` seconds while the cache is read (rarely while it is
        not) and reconnects when a reply is overdue.
        """
        if not self._listen or self.listener is not None:
            return
        from llamacache.engine.netlisten import InvalidationListener

        self.listener = InvalidationListener(self, on_invalidate, on_reset, heartbeat)
        self.listener.start()

    def listening(self, within: float) -> bool:
        """True when the listener is subscribed and has every invalidation published up to
        ``within`` s ago (else local copies need revalidating). After a quiet spell this
        costs one PING round trip (at most ``within``); see ``InvalidationListener.confirm``."""
        listener = self.listener
        return listener is not None and listener.confirm(within)

    def forget_echoes(self) -> None:
        """Drop pending echo counts (the listener reconnected: old echoes never come)."""
        self._echoes.forget()

    def is_own_echo(self, rkey: str) -> bool:
        """True (once) when an invalidation of ``rkey`` is the echo of our own write."""
        return self._echoes.seen(rkey)

    def _expect_echo(self, rkey: str, delta: int) -> None:
        listener = self.listener
        if listener is not None and listener.ready.is_set():
            self._echoes.expect(rkey, delta)  # else nobody listens: no echo will come

    # -- the breaker ------------------------------------------------------------------------

    def available(self) -> bool:
        """False while the breaker is open after a connection failure."""
        return time.monotonic() >= self._down_until

    def _trip(self, exc: BaseException) -> None:
        now = time.monotonic()
        hold = self.retry_interval
        if self.url.startswith(SENTINEL_SCHEME):
            # likely a failover: drop idle connections to the old master (the next one asks
            # the Sentinels where the master is now) and retry soon
            with contextlib.suppress(Exception):
                self.client.connection_pool.disconnect(inuse_connections=False)
            hold = min(hold, SENTINEL_RETRY)
        self._down_until = now + hold
        self.errors += 1
        if now - self._warned_at >= self.retry_interval:
            self._warned_at = now
            log.warning(
                "cache %r: network tier %s unreachable (%s); local tiers keep serving, "
                "retrying in %g s",
                self.cache,
                redact(self.url),
                exc,
                self.retry_interval,
            )

    def _write_failed(self, exc: BaseException) -> None:
        if isinstance(exc, DOWN):
            self._trip(exc)
        else:
            self.errors += 1
        policy = self.settings.write_error_policy
        if policy == "all":
            raise NetworkTierError(
                f"cache {self.cache!r}: write to the network tier {redact(self.url)} failed: {exc}"
            ) from exc
        if policy == "local" and not isinstance(exc, DOWN):
            log.warning("cache %r: network write failed: %s", self.cache, exc)

    def _skip_write(self) -> bool:
        """True when a write must not be attempted (read-only, or the breaker is open)."""
        if self.read_only:
            return True
        if self.available():
            return False
        if self.settings.write_error_policy == "all":
            raise NetworkTierError(
                f"cache {self.cache!r}: write to the network tier {redact(self.url)} failed: "
                "server unreachable"
            )
        return True

    def _ttl(self, expire: float | None) -> int | None:
        ttl = expire if expire is not None else self.settings.ttl
        return None if ttl is None else max(1, int(round(ttl * 1000)))

    # -- reads ------------------------------------------------------------------------------

    def _reject(self, key: Hashable, why: object) -> None:
        """A record we will not use: a network miss, counted, warned about once per process."""
        self.corrupt += 1
        self.rejected += 1
        self.misses += 1
        _warn_once(
            "rejected",
            "cache %r: network entry %r rejected (%s); treated as a miss, local copies kept; "
            "see llamacache verify --tier network",
            self.cache,
            key,
            why,
        )

    def _record(self, key: Hashable) -> tuple[str, nf.Record, framing.EntryMeta] | None:
        if not self.available():
            self.misses += 1
            return None
        rkey = self.rkey(key)
        try:
            data = self.client.get(rkey)
        except DOWN as exc:
            self._trip(exc)
            self.misses += 1
            return None
        except redis.RedisError as exc:  # MOVED, WRONGTYPE, NOPERM...: a miss, never a crash
            self._read_error(key, exc)
            return None
        if data is None:
            self.misses += 1
            return None
        try:
            limit = self.settings.max_value_size
            rec, meta = nf.admit(rkey.encode(), as_bytes(data), self._keys, limit)
        except nf.BadRecord as exc:
            self._reject(key, exc)
            return None
        return rkey, rec, meta

    def _read_error(self, key: Hashable, exc: BaseException) -> None:
        self.read_errors += 1
        self.misses += 1
        _warn_once(
            "read-error",
            "cache %r: the network tier answered a read of %r with an error (%s); treated "
            "as a miss",
            self.cache,
            key,
            exc,
        )

    def probe(self, key: Hashable, ours: bytes | None = None) -> bytes | str:
        """The shared record's entry meta (one GETRANGE of its head), or DELETED (a
        deletion mark), ABSENT, or UNKNOWN (unreachable, an error reply, not a record).

        Used to revalidate a local copy (header ``ours``): equal digests mean it is current.
        A mark left by ``withdraw`` names the value that replaced the shared one: for a copy
        of that very value it reads as ABSENT (the writer's own copy stays valid).
        """
        if not self.available():
            return UNKNOWN
        pipe = self.client.pipeline(transaction=False)
        pipe.getrange(self.rkey(key), 0, nf.PEEK_BYTES - 1)
        pipe.get(self.deleted_prefix + nf.encode_key(key))
        try:
            head, marked = pipe.execute()
        except DOWN as exc:
            self._trip(exc)
            return UNKNOWN
        except redis.RedisError as exc:
            self._read_error(key, exc)
            return UNKNOWN
        if not head:
            if not marked:
                return ABSENT
            return ABSENT if ours is not None and marked == _withdrawn_mark(ours) else DELETED
        return nf.peek_meta(as_bytes(head)) or UNKNOWN

    def compare(self, key: Hashable, meta: bytes) -> str:
        """How the shared record stands against a local copy with ``meta``: "same",
        "differs", or probe's DELETED / ABSENT / UNKNOWN (``push`` decides with this)."""
        theirs = self.probe(key)
        if not isinstance(theirs, bytes):
            return theirs
        return "same" if same_version(theirs, meta) else "differs"

    def shared_digest(self, key: Hashable) -> str | None:
        """Hex digest of the shared record's value, or None when there is none to read."""
        theirs = self.probe(key)
        if not isinstance(theirs, bytes):
            return None
        try:
            return framing.parse_meta(theirs).digest.hex()
        except ValueError:
            return None

    def get(self, key: Hashable) -> tuple[bytes, bytes] | None:
        """``(meta, payload)``; a chunked value is assembled whole (``open_stream`` streams)."""
        got = self.open_stream(key)
        if got is None:
            return None
        meta, total, chunks = got
        buf = bytearray(total)
        view, pos = memoryview(buf), 0
        try:
            for chunk in chunks:
                view[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
        except ChunkMissing:
            return None
        return meta, buf  # type: ignore[return-value]  # bytes-like; framing copies if needed

    def open_stream(self, key: Hashable) -> tuple[bytes, int, Iterator[memoryview]] | None:
        """``(meta, stored length, chunk iterator)``; the iterator raises ChunkMissing.

        Holds at most ``batch_bytes`` of a chunked value in memory at a time.
        """
        found = self._record(key)
        if found is None:
            return None
        rkey, rec, meta = found
        if rec.rtype == nf.T_INLINE:
            self.hits += 1
            return rec.meta, len(rec.body), iter((rec.body,))
        man = nf.unpack_manifest(rec.body)  # admit checked it
        return rec.meta, man.total_len, self._chunks(key, meta, man)

    def _chunks(
        self, key: Hashable, meta: framing.EntryMeta, man: nf.Manifest
    ) -> Iterator[memoryview]:
        """The chunks, each checked; the whole value's digest is checked before the last
        one is handed over, so a caller writing them to disk never indexes bad bytes."""
        digest = meta.digest
        whole = checksums.BY_NAME[meta.checksum].new()
        per = max(1, self.batch_bytes // man.chunk_size)
        names = [
            nf.chunk_key(self.settings.key_prefix, self.cache, digest, man.chunk_size, i)
            for i in range(man.count)
        ]
        seen = 0
        for start in range(0, man.count, per):
            pipe = self.client.pipeline(transaction=False)
            for name in names[start : start + per]:
                pipe.get(name)
            try:
                datas = pipe.execute()
            except DOWN as exc:
                self._trip(exc)
                self.misses += 1
                raise ChunkMissing(f"server unreachable: {exc}") from None
            except redis.RedisError as exc:
                self._read_error(key, exc)
                raise ChunkMissing(f"error reply: {exc}") from None
            for i, data in enumerate(datas, start):
                expect = min(man.chunk_size, man.total_len - i * man.chunk_size)
                if data is None or len(data) != expect or man.algo.digest(data) != man.digests[i]:
                    self.chunk_misses += 1
                    self.misses += 1
                    log.info("cache %r: chunk %d of %r missing or damaged", self.cache, i, key)
                    raise ChunkMissing(names[i])
                seen += len(data)
                whole.update(data)
                if seen == man.total_len and whole.digest() != digest:
                    self._reject(key, "assembled value digest mismatch")
                    raise ChunkMissing(f"{names[i]}: assembled value digest mismatch")
                yield memoryview(data)
        if seen == man.total_len:
            self.hits += 1

    # -- writes -----------------------------------------------------------------------------

    def _unsigned_pickle(self, meta: bytes) -> bool:
        """True (counted, warned once) for a pickled value we have no key to sign."""
        if self._keys or len(meta) < 4 or meta[3] != framing.K_PICKLE:
            return False
        self.unsigned_skipped += 1
        _warn_once(
            "unsigned",
            "cache %r: pickled values are not shared through %s without a signing key "
            "(anyone who can write to the server could run code on every reader); they stay "
            "local. Set cache.network.signing_key to share them.",
            self.cache,
            redact(self.url),
        )
        return True

    def put(
        self,
        key: Hashable,
        meta: bytes,
        payload: bytes,
        expire: float | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Write through: one SET for small values, chunks then manifest for large ones.

        True when the value is on the server; False when it was not sent or failed (the
        cache retries those), or is kept local on purpose (unsigned pickle, too large).
        """
        if self._unsigned_pickle(meta):
            return False
        if self.too_large(meta):
            self.skipped += 1
            return False
        n = len(payload)
        if n > self.chunk_size:
            view = memoryview(payload)
            parts = (view[i : i + self.chunk_size] for i in range(0, n, self.chunk_size))
            return self.put_chunks(key, meta, n, parts, expire, only_if_absent)
        if self._skip_write():
            self.unshared += 1
            return False
        if n > self.settings.max_value_size:
            self.skipped += 1
            return False
        rkey = self.rkey(key)
        record = nf.pack_record(rkey.encode(), nf.T_INLINE, meta, payload, self._signing_key)
        self._expect_echo(rkey, 1)
        try:
            done = self.client.set(rkey, b"".join(record), px=self._ttl(expire), nx=only_if_absent)
        except redis.RedisError as exc:
            self._expect_echo(rkey, -1)
            self.unshared += 1
            self._write_failed(exc)
            return False
        if not done:  # only_if_absent and someone else's value is there: theirs wins
            self._expect_echo(rkey, -1)
            return True
        self.puts += 1
        return True

    def too_large(self, meta: bytes) -> bool:
        """True for a value over ``max_value_size``, stored or decoded: it cannot be shared.

        Every reader refuses a record declaring more (``netformat.admit``), so a compressed
        value small on the wire but large decoded would be a miss everywhere else.
        """
        parsed = framing.parse_meta(meta)
        return max(parsed.stored_len, parsed.raw_len) > self.settings.max_value_size

    def takes_size(self, nbytes: int) -> bool:
        """True when a value of ``nbytes`` is within ``max_value_size`` (and we may write)."""
        return not self.read_only and nbytes <= self.settings.max_value_size

    def shareable(self, meta: bytes) -> bool:
        """False for values kept local on purpose: too large, or pickled without a key."""
        if self.read_only:
            return False
        if not self._keys and len(meta) >= 4 and meta[3] == framing.K_PICKLE:
            return False
        return not self.too_large(meta)

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
        """Share a file-backed entry, read from ``source`` one chunk at a time."""
        size = framing.parse_meta(meta).stored_len
        chunk = self.chunk_size

        def parts() -> Iterator[bytes]:
            while data := source.read(chunk):
                yield data

        if size <= chunk:
            return self.put(key, meta, source.read(), expire, only_if_absent)
        return self.put_chunks(key, meta, size, parts(), expire, only_if_absent)

    def put_chunks(
        self,
        key: Hashable,
        meta: bytes,
        total: int,
        parts: Iterable[nf.BytesLike],
        expire: float | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Chunks in pipelined batches, then the manifest with SET NX (first writer wins).

        A manifest already there for the same content is left alone; one for different
        content is replaced (a put is a put). True when the value is on the server.
        """
        if self._unsigned_pickle(meta):
            return False
        if self._skip_write():
            self.unshared += 1
            return False
        if total > self.settings.max_value_size:
            self.skipped += 1
            return False
        digest = framing.parse_meta(meta).digest
        px = self._ttl(expire)
        rkey = self.rkey(key)
        try:
            digests = self._send_chunks(digest, parts, px)
            if len(digests) != nf.chunk_count(total, self.chunk_size):
                raise NetworkTierError(f"cache {self.cache!r}: value for {key!r} changed size")
            man = nf.Manifest(total, self.chunk_size, self._chunk_algo, tuple(digests))
            record = b"".join(
                nf.pack_record(rkey.encode(), nf.T_MANIFEST, meta, man.pack(), self._signing_key)
            )
            self._expect_echo(rkey, 1)
            if not self.client.set(rkey, record, px=px, nx=True):
                old = self.client.get(rkey)
                if only_if_absent or (
                    old is not None and self._same_content(rkey, as_bytes(old), meta)
                ):
                    self._expect_echo(rkey, -1)
                else:
                    self.client.set(rkey, record, px=px)
        except (redis.RedisError, NetworkTierError) as exc:
            self._expect_echo(rkey, -1)
            self.unshared += 1
            self._write_failed(exc)
            return False
        self.puts += 1
        return True

    def _send_chunks(
        self, digest: bytes, parts: Iterable[nf.BytesLike], px: int | None
    ) -> list[bytes]:
        algo, size = self._chunk_algo, self.chunk_size
        digests: list[bytes] = []
        pipe = self.client.pipeline(transaction=False)
        pending = 0
        for part in parts:
            i = len(digests)
            digests.append(algo.digest(part))
            name = nf.chunk_key(self.settings.key_prefix, self.cache, digest, size, i)
            pipe.set(name, part, px=px)
            pending += len(part)
            if pending >= self.batch_bytes:
                pipe.execute()
                pending = 0
        if pending or len(pipe):
            pipe.execute()
        return digests

    def _same_content(self, rkey: str, data: bytes, meta: bytes) -> bool:
        try:
            rec = nf.unpack_record(rkey.encode(), data, self._keys)
        except nf.BadRecord:
            return False
        return rec.rtype == nf.T_MANIFEST and rec.meta == meta

    def remove(self, key: Hashable) -> bool:
        """UNLINK the entry record, leave a deletion mark (see ``probe``) and tell every
        listener; its chunks may be shared, ``clean`` sweeps orphans. True if a record went."""
        return self._withdraw(key) > 0

    def withdraw(self, key: Hashable, meta: bytes) -> None:
        """``key`` was given a value this tier does not take (too large, a pickle without a
        key, or held by the object tier): the shared one is no longer its value. Removed as
        by ``remove``, so every machine reads the key again: from the object store, or as a
        miss. The mark names the new value (``meta``'s digest), so copies of it stay valid."""
        self._withdraw(key, _withdrawn_mark(meta))

    def _withdraw(self, key: Hashable, mark: bytes = b"1") -> int:
        """A deletion mark, the record's UNLINK, and an invalidation published on the
        listeners' channel even when no record existed: a copy another machine took from
        the object store has no record here to be invalidated by. Records removed (0/1)."""
        if self.read_only or not self.available():
            return 0
        from llamacache.engine.netlisten import CHANNEL

        rkey = self.rkey(key)
        self._expect_echo(rkey, 2)  # the UNLINK's invalidation (if there was a record) + ours
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.deleted_prefix + nf.encode_key(key), mark, ex=DELETE_MARK_SECONDS)
            pipe.unlink(rkey)
            pipe.publish(CHANNEL, rkey)
            n = int(pipe.execute()[1])
        except redis.RedisError as exc:
            self._expect_echo(rkey, -2)
            self._write_failed(exc)
            return 0
        if not n:
            self._expect_echo(rkey, -1)
        return n

    def clear(self) -> int:
        """UNLINK every key of this cache (SCAN in batches); returns how many entries went."""
        if self.read_only or not self.available():
            return 0
        entries = 0
        try:
            for batch in self.scan_batches(self.prefix + "*"):
                entries += sum(1 for k in batch if k.startswith(self.entry_prefix.encode()))
                self.client.unlink(*batch)
        except redis.RedisError as exc:
            self._write_failed(exc)
        return entries

    def scan_batches(self, match: str, count: int = 1000) -> Iterator[list[bytes]]:
        """Keys matching ``match`` in batches (SCAN, never KEYS)."""
        cursor = 0
        while True:
            cursor, keys = self.client.scan(cursor, match=match, count=count)
            if keys:
                yield [as_bytes(k) for k in keys]
            if cursor == 0:
                return

    # -- admin ----------------------------------------------------------------------------

    def key_text(self, rkey: str) -> str:
        """The cache key of an entry record as people wrote it (a hashed key: its text form)."""
        text = rkey[len(self.entry_prefix) :]
        key = nf.decode_key(text)
        return text if key is None else str(key)

    def records(self) -> Iterator[tuple[str, bytes | None]]:
        """``(entry key, record or None if it vanished)`` for every entry of this cache.

        SCAN plus one MGET per 1000 entries; raises redis.RedisError / OSError.
        """
        for batch in self.scan_batches(self.entry_prefix + "*"):
            datas = self.client.mget(batch)
            for k, d in zip(batch, datas, strict=True):
                yield k.decode("utf-8", "replace"), None if d is None else as_bytes(d)

    def record_shape(self, rkey: str, data: bytes) -> RecordShape:
        """What ``ls`` and ``clean`` need of an entry record (kind, size, its chunks' address).

        Unauthenticated: only for listing and for telling live chunks from orphans, never
        for serving a value (reads go through ``admit``).
        """
        try:
            rec = nf.unpack_record(rkey.encode(), data, None)
            meta = framing.parse_meta(rec.meta)
            address = None
            if rec.rtype == nf.T_MANIFEST:
                man = nf.unpack_manifest(rec.body)
                address = f"{meta.digest.hex()}.{man.chunk_size}"
        except (nf.BadRecord, ValueError):
            return RecordShape("?", False, len(data), None)
        return RecordShape(meta.kind, rec.rtype == nf.T_MANIFEST, meta.stored_len, address)

    @staticmethod
    def chunk_address(chunk_key: str) -> str | None:
        """The "<digest>.<chunk size>" a chunk's Redis key belongs to (None: not a chunk)."""
        return nf.chunk_address(chunk_key)

    def verify_records(self) -> Iterator[RecordCheck]:
        """Every entry record through the gate a read passes, every chunk present and right.

        Reads every chunk once, in MGET batches of at most ``batch_bytes``, so it costs the
        whole shared payload in transfer; writes nothing and counts nothing. A record that
        vanished meanwhile is skipped. Raises redis.RedisError / OSError (server failed).
        """
        for rkey, data in self.records():
            if data is None:
                continue
            problem, seen = self._verify_record(rkey, data)
            yield RecordCheck(self.key_text(rkey), problem, seen)

    def _verify_record(self, rkey: str, data: bytes) -> tuple[str | None, int]:
        try:  # the same gate a read goes through: what it rejects is listed
            rec, meta = nf.admit(rkey.encode(), data, self._keys, self.settings.max_value_size)
        except nf.BadRecord as exc:
            return str(exc), 0
        if rec.rtype == nf.T_INLINE:
            return None, len(rec.body)
        man = nf.unpack_manifest(rec.body)
        per = max(1, self.batch_bytes // man.chunk_size)
        hasher = checksums.BY_NAME[meta.checksum].new()
        seen = 0
        for start in range(0, man.count, per):
            names = [
                nf.chunk_key(self.settings.key_prefix, self.cache, meta.digest, man.chunk_size, i)
                for i in range(start, min(man.count, start + per))
            ]
            for i, reply in enumerate(self.client.mget(names), start):
                if reply is None:
                    return f"missing chunk {i} ({names[i - start]})", seen
                chunk = as_bytes(reply)
                if man.algo.digest(chunk) != man.digests[i]:
                    return f"chunk {i} digest mismatch ({names[i - start]})", seen
                hasher.update(chunk)
                seen += len(chunk)
        if seen != meta.stored_len or hasher.digest() != meta.digest:
            return "assembled value digest mismatch", seen
        return None, seen

    # -- lifecycle --------------------------------------------------------------------------

    def stats(self) -> TierStats:
        """Counters of this process (entries and bytes need a SCAN: see ops.network_admin)."""
        return TierStats("network", self.hits, self.misses, self.puts, 0, 0, self.corrupt, 0, 0)

    def close(self) -> None:
        """Stop the listener; the pool stays for other caches of this process."""
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
