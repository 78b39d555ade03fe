"""How entries are laid out in Redis: key names, the entry record, chunk manifests, signatures.

Pure functions with no connection, so the admin commands and the tier agree on one layout.

* entry:  ``{prefix}{cache}:e:{encoded key}`` -> record (inline payload, or a manifest)
* chunk:  ``{prefix}{cache}:{<hexdigest>.<chunk_size>}:c:<i>`` -> raw bytes of chunk ``i``.
  Content-addressed by the value's stored digest (the braces are a Redis Cluster hash tag,
  keeping one value's chunks in one slot); the chunk size is part of the address so two
  writers with different chunk sizes never overwrite each other's chunks.

Record (little-endian): ``b"LN"``, version, type (0 inline, 1 manifest), flags (bit 0:
signed, bit 1: key id present), meta length (u32), meta, key id (4 bytes, when flagged),
HMAC-SHA256 (32 bytes, when signed), body. The HMAC covers the Redis key, the type, the meta
and the body, so a record cannot be replayed under another key. The key id names which of
several configured keys signed it (the first key signs, every key verifies: rotation); it is
derived from the key, so nobody has to invent ids. A manifest body: total length (u64),
chunk size (u32), chunk count (u32), chunk digest algorithm id (u8), then one digest per
chunk. Nothing here unpickles: keys that are not str/bytes/int/float or flat tuples of those
are hashed, never decoded.

Anyone who can write to the server can write a record, so ``admit`` is the gate every read
goes through: a record that is not authenticated by one of our keys may only carry kinds
that decode without running code (bytes, str, plain numeric arrays, raw files), and an
inline payload is fully checked (digest, decompression within declared bounds, UTF-8)
before any byte of it reaches the local disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import re
import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Union

from llamacache.engine import checksums, codecs, framing
from llamacache.engine.signing import KEY_ID_LEN, key_id

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)

MAGIC = b"LN"
VERSION = 1
T_INLINE, T_MANIFEST = 0, 1
F_SIGNED, F_KEY_ID = 1, 2
SIG_LEN = 32
# Kinds that decode without running code; anything else needs an authenticated record.
SAFE_KINDS = frozenset({"bytes", "str", "numpy", "rawfile"})
# Plain numeric/text dtypes only ("|O" object arrays would need pickle).
_SAFE_DTYPE = re.compile(r"[<>|=]?[?biufcSUmM]\d{0,4}(\[[a-z]{1,2}\])?")
_REC = struct.Struct("<2sBBBI")
_MAN = struct.Struct("<QIIB")


class BadRecord(ValueError):
    """A record that is not ours, is truncated, or fails its signature."""


def entry_prefix(key_prefix: str, cache: str) -> str:
    """Prefix of every entry key of one cache (what the invalidation listener tracks)."""
    return f"{key_prefix}{cache}:e:"


def deleted_prefix(key_prefix: str, cache: str) -> str:
    """Prefix of the deletion marks: ``{prefix}{cache}:d:{encoded key}`` -> b"1" with a TTL.

    A remove leaves one, so a machine that missed the invalidation can tell "deleted"
    (drop the local copy) from "evicted or expired" (keep it) when it revalidates.
    """
    return f"{key_prefix}{cache}:d:"


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
    flags = F_SIGNED | F_KEY_ID if signing_key else 0
    head = _REC.pack(MAGIC, VERSION, rtype, flags, len(meta)) + meta
    if signing_key:
        head += key_id(signing_key) + _sign(signing_key, rkey, rtype, meta, body)
    return [head, body]


@dataclass(frozen=True)
class Record:
    """One parsed entry record: its meta, and either an inline payload or a manifest."""

    rtype: int
    meta: bytes
    body: memoryview
    signed: bool
    authenticated: bool = False  # the HMAC matched one of the configured keys


def _keys(keys: Sequence[bytes] | bytes | None) -> tuple[bytes, ...]:
    if keys is None:
        return ()
    if isinstance(keys, bytes):
        return (keys,)
    return tuple(keys)


def unpack_record(rkey: bytes, data: bytes, keys: Sequence[bytes] | bytes | None) -> Record:
    """Parse and (with keys) authenticate a record; raises BadRecord.

    With keys configured, a record must be signed by one of them. Without keys a signed
    record parses but is not ``authenticated``: there is nothing to check it against.
    """
    keys = _keys(keys)
    try:
        magic, version, rtype, flags, mlen = _REC.unpack_from(data)
    except struct.error:
        raise BadRecord("truncated record header") from None
    if magic != MAGIC or version != VERSION or rtype not in (T_INLINE, T_MANIFEST):
        raise BadRecord("not a llamacache network record")
    if flags & ~(F_SIGNED | F_KEY_ID):
        raise BadRecord("unknown record flags")
    pos = _REC.size + mlen
    meta = data[_REC.size : pos]
    signed = bool(flags & F_SIGNED)
    sig = kid = b""
    if signed:
        if flags & F_KEY_ID:
            kid, pos = data[pos : pos + KEY_ID_LEN], pos + KEY_ID_LEN
        sig, pos = data[pos : pos + SIG_LEN], pos + SIG_LEN
    if len(data) < pos:
        raise BadRecord("truncated record")
    body = memoryview(data)[pos:]
    if not keys:
        return Record(rtype, meta, body, signed, False)
    if not signed:
        raise BadRecord("unsigned entry (a signing key is set)")
    candidates = [k for k in keys if not kid or key_id(k) == kid]
    if not candidates:
        raise BadRecord(f"signed with an unknown key (id {kid.hex()})")
    for k in candidates:
        if hmac.compare_digest(sig, _sign(k, rkey, rtype, meta, body)):
            return Record(rtype, meta, body, True, True)
    raise BadRecord("bad signature")


PEEK_BYTES = 1024  # a GETRANGE this long holds a record's header and meta


def peek_meta(head: bytes) -> bytes | None:
    """The entry meta from the first bytes of a record (a version check, never trusted
    for data: the full read still goes through ``admit``); None if not a record."""
    try:
        magic, version, rtype, _flags, mlen = _REC.unpack_from(head)
    except struct.error:
        return None
    if magic != MAGIC or version != VERSION or rtype not in (T_INLINE, T_MANIFEST):
        return None
    meta = head[_REC.size : _REC.size + mlen]
    return meta if len(meta) == mlen else None


def safe_dtype(dtype: str | None) -> bool:
    """True for a plain numeric/text array dtype (never an object array)."""
    return dtype is not None and _SAFE_DTYPE.fullmatch(dtype) is not None


def admit(
    rkey: bytes, data: bytes, keys: Sequence[bytes] | bytes | None, max_len: int
) -> tuple[Record, framing.EntryMeta]:
    """The gate every network read passes: authenticated or harmless, and intact; BadRecord.

    ``max_len`` bounds the declared sizes (a record cannot make us allocate more). An inline
    payload is checked as ``framing.decode`` would check it, short of unpickling, so a bad
    record is refused before it is written to the local disk.
    """
    rec = unpack_record(rkey, data, keys)
    try:
        meta = framing.parse_meta(rec.meta)
    except ValueError as exc:
        raise BadRecord(str(exc)) from None
    if not rec.authenticated and meta.kind not in SAFE_KINDS:
        raise BadRecord(f"unsigned {meta.kind} value refused (only a signed record may hold one)")
    if meta.kind == "numpy" and not safe_dtype(meta.dtype):
        raise BadRecord(f"array dtype {meta.dtype!r} refused")
    if meta.raw_len > max_len or meta.stored_len > max_len:
        raise BadRecord(f"declared size {meta.raw_len} over the limit {max_len}")
    if meta.kind == "numpy":
        n = 1
        for d in meta.shape or ():
            n *= d
        try:
            import numpy as np

            itemsize = np.dtype(meta.dtype).itemsize
        except (ImportError, TypeError, ValueError):
            raise BadRecord(f"array dtype {meta.dtype!r} refused") from None
        if n * itemsize != meta.raw_len:
            raise BadRecord("array shape does not match its length")
    if rec.rtype == T_INLINE:
        _check_inline(meta, rec.body)
    else:
        man = unpack_manifest(rec.body)
        if man.total_len != meta.stored_len:
            raise BadRecord("manifest length does not match the entry header")
    return rec, meta


def _check_inline(meta: framing.EntryMeta, body: memoryview) -> None:
    if not framing.verify_payload(meta, body):
        raise BadRecord("payload digest mismatch")
    raw: BytesLike = body
    if meta.codec != "none":
        try:
            raw = codecs.decompress(codecs.BY_NAME[meta.codec].id, body, meta.raw_len)
        except Exception as exc:  # any codec failure is a bad record
            raise BadRecord(f"cannot decompress: {exc}") from None
    if len(raw) != meta.raw_len:
        raise BadRecord("decompressed length mismatch")
    if meta.kind == "str":
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRecord("text value is not UTF-8") from None


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
