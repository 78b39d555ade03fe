"""How a Python value becomes ``(meta, payload)`` on disk, and back, never returning bad data.

``meta`` is a compact header kept in diskcache's ``tag`` column, so ``ls`` and ``verify``
can read kind, codec, lengths and digest from the index without opening values; the
payload is the diskcache value (inline BLOB, or a file when large). The digest covers the
*stored* payload (after compression), so verifying never needs to decompress.

Layout (little-endian): ``b"LC"``, version, kind id, codec id, checksum id, raw length
(u64), stored length (u64), key hash (8 bytes), digest (size fixed by the checksum id),
kind extras (numpy: dtype string, ndim, dims), then a CRC-32 of all of the above. The
digest covers only the payload, so a flipped bit in the header (kind pickle -> bytes,
dtype "<f4" -> ">f4") would otherwise serve different values from intact bytes; the CRC
makes that a CorruptEntryError too.

The key hash binds an entry to its key: an index row whose key was altered (one flipped
bit turns ``user:1001`` into ``user:1000``), a row pointing at another entry's file, or a
header copied from another row all fail ``check_key`` and read as corrupt, never as
another key's value. Entries written before version 3 carry no key hash: they read as a
miss (``StaleEntryError``), are rewritten by the next put, and ``verify`` can report them.
"""

from __future__ import annotations

import pickle
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

from xxhash import xxh3_64_digest as _xxh64

from llamacache.config.settings import CacheSettings
from llamacache.engine import checksums, codecs
from llamacache.errors import CorruptEntryError, StaleEntryError

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)

MAGIC = b"LC"
VERSION = 3  # 2: header CRC-32 appended; 3: key hash after the lengths
OLD_VERSIONS = (2,)  # parsed for display (ls, verify), never served
KINDS: tuple[str, ...] = ("", "bytes", "str", "numpy", "pickle", "rawfile")  # index = id
KIND_ID: dict[str, int] = {name: i for i, name in enumerate(KINDS) if name}
K_BYTES, K_STR, K_NUMPY, K_PICKLE, K_RAWFILE = 1, 2, 3, 4, 5
PICKLE_PROTOCOL = 5
BLOCK = 4 * 1024 * 1024

_HDR = struct.Struct("<2sBBBBQQ8s")  # ... key hash
_HDR_SIZE = _HDR.size
_HDR_V2 = struct.Struct("<2sBBBBQQ")
KEY_HASH_SIZE = 8
_DLEN: dict[int, int] = {a.id: a.digest_size for a in checksums.ALGORITHMS}
_DIGEST = checksums.DIGEST_BY_ID
_DIM = struct.Struct("<Q")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class EntryMeta:
    """The parsed header of one entry (what ``ls``/``verify`` show without reading values)."""

    kind: str
    codec: str
    checksum: str
    digest: bytes
    raw_len: int
    stored_len: int
    dtype: str | None = None  # numpy kind only
    shape: tuple[int, ...] | None = None  # numpy kind only
    version: int = VERSION
    key_hash: bytes | None = None  # None: written before version 3 (bound to no key)

    @property
    def is_raw(self) -> bool:
        """True when the stored payload is exactly the value's bytes (mappable as a file)."""
        return self.codec == "none" and self.kind in ("bytes", "rawfile")


def key_bytes(key: Any) -> bytes:
    """A stable byte form of a key: its type and its value (pickled only for other types)."""
    t = type(key)
    if t is str:
        text: str = key
        return b"s" + text.encode("utf-8", "surrogatepass")
    if t is bytes:
        return b"b" + bytes(key)
    if t is int:
        return b"i" + str(key).encode("ascii")
    if t is float:
        number: float = key
        return b"f" + number.hex().encode("ascii")
    return b"p" + pickle.dumps(key, protocol=PICKLE_PROTOCOL)


def key_hash(key: Any) -> bytes:
    """The 8-byte hash of ``key`` kept in every header (xxh3-64; ~0.1 us for a short key)."""
    out: bytes = _xxh64(key_bytes(key))
    return out


def make_meta(
    kind: int,
    codec: int,
    algo: int,
    digest: bytes,
    raw_len: int,
    stored_len: int,
    key: Any,
    extras: bytes = b"",
) -> bytes:
    """Build a header bound to ``key`` from ids (``encode`` and the disk tier's ``put_file``)."""
    fixed = _HDR.pack(MAGIC, VERSION, kind, codec, algo, raw_len, stored_len, key_hash(key))
    body = fixed + digest + extras
    return body + _CRC.pack(zlib.crc32(body))


def rebind(meta: bytes, key: Any) -> bytes:
    """The same header bound to ``key`` instead (one framed payload stored under many keys).

    Raises ValueError for a damaged header or one in an older format.
    """
    body = _checked_body(meta)
    if body is None or body[:3] != MAGIC + bytes((VERSION,)):
        raise ValueError("not a current llamacache entry header")
    start = _HDR_SIZE - KEY_HASH_SIZE
    body = body[:start] + key_hash(key) + body[_HDR_SIZE:]
    return body + _CRC.pack(zlib.crc32(body))


def check_key(meta: EntryMeta | bytes, key: Any) -> bool:
    """True when the header was written for ``key`` (what ``verify --quick`` checks per row).

    False for a damaged header, an entry of another key, or one written before version 3.
    """
    if not isinstance(meta, EntryMeta):
        try:
            meta = parse_meta(meta)
        except ValueError:
            return False
    return meta.key_hash is not None and meta.key_hash == key_hash(key)


def _checked_body(meta: bytes) -> bytes | None:
    """The header without its CRC, or None when the CRC does not match (a damaged header)."""
    if len(meta) < _HDR_V2.size + _CRC.size:
        return None
    body = meta[: -_CRC.size]
    if _CRC.unpack(meta[-_CRC.size :])[0] != zlib.crc32(body):
        return None
    return body


def _numpy_extras(dtype_str: str, shape: tuple[int, ...]) -> bytes:
    d = dtype_str.encode("ascii")
    return bytes((len(d),)) + d + bytes((len(shape),)) + b"".join(_DIM.pack(n) for n in shape)


def _parse_numpy_extras(meta: bytes, pos: int) -> tuple[str, tuple[int, ...]]:
    n = meta[pos]
    dtype = meta[pos + 1 : pos + 1 + n].decode("ascii")
    pos += 1 + n
    ndim = meta[pos]
    pos += 1
    shape = tuple(_DIM.unpack_from(meta, pos + 8 * i)[0] for i in range(ndim))
    if pos + 8 * ndim != len(meta):
        raise ValueError("trailing bytes after numpy shape")
    return dtype, shape


def is_raw_file(meta: bytes) -> bool:
    """A header of a file stored byte for byte (``put_file``), read without parsing: such an
    entry stays file-backed on every machine (``get_path``/``get_model`` map it)."""
    return len(meta) > 3 and meta[3] == K_RAWFILE


def plain_array(value: Any) -> Any:
    """``value`` if it is a plain numpy array we can store as a raw buffer, else None."""
    np = sys.modules.get("numpy")  # if numpy was never imported, value cannot be an array
    if np is None or type(value) is not np.ndarray:
        return None
    if value.dtype.hasobject or value.dtype.fields is not None or value.dtype.subdtype:
        return None  # object or structured dtypes: pickle keeps their full description
    return value


def encode(value: Any, settings: CacheSettings, key: Any) -> tuple[bytes, BytesLike]:
    """Frame one value for ``key``: ``(meta, payload)``; payload may be a memoryview (no copy).

    Costs one checksum pass over the stored bytes, plus compression per the cache's
    ``compression`` setting; pickles anything that is not bytes, str or a plain array.
    """
    extras = b""
    t = type(value)
    raw: BytesLike
    if t is bytes:
        kind, raw = K_BYTES, value
    elif t is str:
        kind, raw = K_STR, value.encode("utf-8")
    elif (arr := plain_array(value)) is not None:
        import numpy as np

        arr = np.ascontiguousarray(arr)
        kind, raw = K_NUMPY, memoryview(arr.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        extras = _numpy_extras(arr.dtype.str, tuple(arr.shape))
    else:
        kind, raw = K_PICKLE, pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    codec, stored = codecs.choose_codec(settings.compression, raw, settings.compression_level)
    algo = checksums.BY_NAME[settings.checksum]
    digest = algo.digest(stored)
    meta = make_meta(kind, codec.id, algo.id, digest, len(raw), len(stored), key, extras)
    return meta, stored


def parse_meta(meta: bytes) -> EntryMeta:
    """Parse a header; raises ValueError when it is not one of ours or is damaged."""
    body = _checked_body(meta)
    if body is None:
        raise ValueError("damaged entry header (checksum mismatch)")
    meta = body
    try:
        khash: bytes | None = None
        if meta[2:3] == bytes((VERSION,)):
            magic, version, kind, codec, algo, raw_len, stored_len, khash = _HDR.unpack_from(meta)
            start = _HDR_SIZE
        else:
            magic, version, kind, codec, algo, raw_len, stored_len = _HDR_V2.unpack_from(meta)
            start = _HDR_V2.size
        dlen = _DLEN[algo]
        end = start + dlen
        if magic != MAGIC or version not in (VERSION, *OLD_VERSIONS) or len(meta) < end:
            raise ValueError("not a llamacache entry header")
        dtype = shape = None
        if kind == K_NUMPY:
            dtype, shape = _parse_numpy_extras(meta, end)
        elif len(meta) != end:
            raise ValueError("trailing bytes in entry header")
        return EntryMeta(
            kind=KINDS[kind] or "?",
            codec=codecs.BY_ID[codec].name,
            checksum=checksums.BY_ID[algo].name,
            digest=bytes(meta[start:end]),
            raw_len=raw_len,
            stored_len=stored_len,
            dtype=dtype,
            shape=shape,
            version=version,
            key_hash=khash,
        )
    except (struct.error, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"damaged entry header: {exc}") from None


def decode(meta: bytes, payload: BytesLike, cache: str, key: Any) -> Any:
    """Verify and rebuild ``key``'s value; raises CorruptEntryError (naming cache and key).

    Never lies: the header must be bound to ``key`` and the payload match its digest.
    Costs one checksum pass over the payload (~1 us for a 100-byte value), one hash of
    the key, plus decompression / unpickling where the entry needs it. Arrays come back
    read-only. An entry in an older format raises StaleEntryError (callers miss).
    """
    body = _checked_body(meta)
    if body is None:
        raise CorruptEntryError(cache, key, "bad entry header")
    meta = body
    try:
        magic, version, kind, codec, algo, raw_len, stored_len, khash = _HDR.unpack_from(meta)
        end = _HDR_SIZE + _DLEN[algo]
        ok = magic == MAGIC and version == VERSION and kind < len(KINDS)
    except (struct.error, KeyError, TypeError):
        ok = False
    if not ok:
        if meta[:2] == MAGIC and meta[2:3] in (bytes((v,)) for v in OLD_VERSIONS):
            raise StaleEntryError(cache, key, "written by an older llamacache (no key hash)")
        raise CorruptEntryError(cache, key, "bad entry header")
    if khash != key_hash(key):
        raise CorruptEntryError(cache, key, "entry belongs to another key")
    if len(payload) != stored_len:
        raise CorruptEntryError(
            cache, key, f"stored length {len(payload)} != recorded {stored_len}"
        )
    if meta[_HDR_SIZE:end] != _DIGEST[algo](payload):
        raise CorruptEntryError(cache, key, "checksum mismatch")
    raw = payload
    if codec:
        try:
            raw = codecs.decompress(codec, payload, raw_len)
        except Exception as exc:  # any codec failure after a good checksum is still corruption
            raise CorruptEntryError(cache, key, f"cannot decompress: {exc}") from None
        if len(raw) != raw_len:
            raise CorruptEntryError(cache, key, "decompressed length mismatch")
    return _rebuild(kind, raw, meta, end, cache, key)


def _rebuild(kind: int, raw: BytesLike, meta: bytes, end: int, cache: str, key: Any) -> Any:
    """The value of a verified payload, by kind."""
    if kind in (K_BYTES, K_RAWFILE):
        return raw if type(raw) is bytes else bytes(raw)
    if kind == K_STR:
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptEntryError(cache, key, f"not UTF-8: {exc}") from None
    if kind == K_PICKLE:
        return pickle.loads(raw)
    if kind == K_NUMPY:
        return _decode_numpy(meta, end, raw, cache, key)
    raise CorruptEntryError(cache, key, f"unknown kind id {kind}")


def _decode_numpy(meta: bytes, pos: int, raw: BytesLike, cache: str, key: Any) -> Any:
    import numpy as np

    try:
        dtype, shape = _parse_numpy_extras(meta, pos)
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)
    except (ValueError, TypeError, IndexError, struct.error) as exc:
        raise CorruptEntryError(cache, key, f"bad array header: {exc}") from None


def verify_payload(meta: EntryMeta | bytes, payload: BytesLike | BinaryIO) -> bool:
    """True when the payload (bytes, or a binary file read in 4 MiB blocks) matches the header.

    Costs one pass over the payload; never decompresses. A damaged header is False.
    """
    if not isinstance(meta, EntryMeta):
        try:
            meta = parse_meta(meta)
        except ValueError:
            return False
    algo = checksums.BY_NAME[meta.checksum]
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload) == meta.stored_len and algo.digest(payload) == meta.digest
    hasher = algo.new()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    while True:
        n = payload.readinto(view)  # type: ignore[attr-defined]
        if not n:
            break
        hasher.update(view[:n])
        total += n
    return total == meta.stored_len and hasher.digest() == meta.digest
