"""How entries are laid out in Redis: key names, the entry record, chunk manifests, signatures.

Pure functions with no connection, so the admin commands and the tier agree on one layout.

* entry:  ``{prefix}{cache}:e:{encoded key}`` -> record (inline payload, or a manifest)
* chunk:  ``{prefix}{cache}:{<hexdigest>.<chunk_size>}:c:<i>`` -> raw bytes of chunk ``i``.
  Content-addressed by the value's stored digest (the braces are a Redis Cluster hash tag,
  keeping one value's chunks in one slot); the chunk size is part of the address so two
  writers with different chunk sizes never overwrite each other's chunks.

Record (little-endian): ``b"LN"``, version, type (0 inline, 1 manifest), flags (bit 0:
signed), meta length (u32), meta, HMAC-SHA256 (32 bytes, when signed), body. The HMAC covers
the Redis key, the type, the meta and the body, so a record cannot be replayed under another
key. A manifest body: total length (u64), chunk size (u32), chunk count (u32), chunk digest
algorithm id (u8), then one digest per chunk. Nothing here unpickles: keys that are not
str/bytes/int/float or flat tuples of those are hashed, never decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Union

from llamacache.engine import checksums

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)

MAGIC = b"LN"
VERSION = 1
T_INLINE, T_MANIFEST = 0, 1
F_SIGNED = 1
SIG_LEN = 32
_REC = struct.Struct("<2sBBBI")
_MAN = struct.Struct("<QIIB")


class BadRecord(ValueError):
    """A record that is not ours, is truncated, or fails its signature."""


def entry_prefix(key_prefix: str, cache: str) -> str:
    """Prefix of every entry key of one cache (what the invalidation listener tracks)."""
    return f"{key_prefix}{cache}:e:"


def cache_prefix(key_prefix: str, cache: str) -> str:
    """Prefix of every key (entries and chunks) of one cache."""
    return f"{key_prefix}{cache}:"


def chunk_key(key_prefix: str, cache: str, digest: bytes, chunk_size: int, i: int) -> str:
    """Redis key of chunk ``i`` of the value whose stored digest is ``digest``."""
    return f"{key_prefix}{cache}:{{{digest.hex()}.{chunk_size}}}:c:{i}"


def chunk_address(key: str) -> str | None:
    """The ``<hexdigest>.<chunk_size>`` part of a chunk key, or None for other keys."""
    start, end = key.find("{"), key.find("}:c:")
    return key[start + 1 : end] if 0 <= start < end else None


def _flat(value: object) -> bool:
    return type(value) in (str, int, float, bool) or value is None


def encode_key(key: Hashable) -> str:
    """A stable text form of a cache key; readable for str/bytes/int/float/flat tuples."""
    t = type(key)
    if t is str and isinstance(key, str):
        return "s:" + key
    if t is bytes and isinstance(key, bytes):
        return "b:" + key.hex()
    if t is int:
        return f"i:{key}"
    if t is float:
        return f"f:{key!r}"
    if t is tuple and isinstance(key, tuple) and all(_flat(v) for v in key):
        return "t:" + json.dumps(list(key), ensure_ascii=False)
    # Pickling a key locally is safe (we never unpickle it); the hash is one-way.
    return "h:" + hashlib.sha256(pickle.dumps(key, protocol=5)).hexdigest()


def decode_key(text: str) -> Hashable | None:
    """The cache key back from ``encode_key``'s text, or None when it was hashed/unknown."""
    tag, _, rest = text.partition(":")
    try:
        if tag == "s":
            return rest
        if tag == "b":
            return bytes.fromhex(rest)
        if tag == "i":
            return int(rest)
        if tag == "f":
            return float(rest)
        if tag == "t":
            return tuple(json.loads(rest))
    except ValueError:
        return None
    return None


def _sign(signing_key: bytes, rkey: bytes, rtype: int, meta: bytes, body: BytesLike) -> bytes:
    mac = hmac.new(signing_key, rkey, hashlib.sha256)
    mac.update(bytes((rtype,)))
    mac.update(struct.pack("<I", len(meta)))
    mac.update(meta)
    mac.update(body)
    return mac.digest()


def pack_record(
    rkey: bytes, rtype: int, meta: bytes, body: BytesLike, signing_key: bytes | None
) -> list[BytesLike]:
    """The record as parts to send (no copy of a large body); join them to store."""
    flags = F_SIGNED if signing_key else 0
    head = _REC.pack(MAGIC, VERSION, rtype, flags, len(meta)) + meta
    if signing_key:
        head += _sign(signing_key, rkey, rtype, meta, body)
    return [head, body]


@dataclass(frozen=True)
class Record:
    """One parsed entry record: its meta, and either an inline payload or a manifest."""

    rtype: int
    meta: bytes
    body: memoryview
    signed: bool


def unpack_record(rkey: bytes, data: bytes, signing_key: bytes | None) -> Record:
    """Parse and (with a key) authenticate a record; raises BadRecord."""
    try:
        magic, version, rtype, flags, mlen = _REC.unpack_from(data)
    except struct.error:
        raise BadRecord("truncated record header") from None
    if magic != MAGIC or version != VERSION or rtype not in (T_INLINE, T_MANIFEST):
        raise BadRecord("not a llamacache network record")
    pos = _REC.size + mlen
    meta = data[_REC.size : pos]
    signed = bool(flags & F_SIGNED)
    sig = b""
    if signed:
        sig, pos = data[pos : pos + SIG_LEN], pos + SIG_LEN
    if len(data) < pos:
        raise BadRecord("truncated record")
    body = memoryview(data)[pos:]
    if signing_key is not None:
        if not signed:
            raise BadRecord("unsigned entry (a signing key is set)")
        if not hmac.compare_digest(sig, _sign(signing_key, rkey, rtype, meta, body)):
            raise BadRecord("bad signature")
    return Record(rtype, meta, body, signed)


@dataclass(frozen=True)
class Manifest:
    """Where a chunked value's bytes are and what each chunk must hash to."""

    total_len: int
    chunk_size: int
    algo: checksums.Algorithm
    digests: tuple[bytes, ...]

    @property
    def count(self) -> int:
        return len(self.digests)

    def pack(self) -> bytes:
        head = _MAN.pack(self.total_len, self.chunk_size, self.count, self.algo.id)
        return head + b"".join(self.digests)


def chunk_count(total_len: int, chunk_size: int) -> int:
    """Chunks needed for ``total_len`` bytes (at least one, so an empty value is addressable)."""
    return max(1, -(-total_len // chunk_size))


def unpack_manifest(body: BytesLike) -> Manifest:
    """Parse a manifest body; raises BadRecord."""
    try:
        total, size, n, algo_id = _MAN.unpack_from(body)
        algo = checksums.BY_ID[algo_id]
    except (struct.error, KeyError):
        raise BadRecord("damaged manifest") from None
    dl = algo.digest_size
    raw = bytes(body[_MAN.size :])
    if len(raw) != n * dl or size <= 0 or n != chunk_count(total, size):
        raise BadRecord("damaged manifest")
    return Manifest(total, size, algo, tuple(raw[i * dl : (i + 1) * dl] for i in range(n)))
