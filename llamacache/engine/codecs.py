"""Compression codecs as a table, and the ``auto`` rule that decides when compression pays.

Each codec has a one-byte id that is written into every entry's header, so ids are
part of the on-disk format: never renumber, only append. zstd/lz4/zlib contexts are
cached per thread because ``ZstdCompressor`` objects must not be shared across threads
and building one costs more than compressing a small value.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # imported on first use: reading an index or a raw value needs neither
    import zstandard

BytesLike = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)

AUTO_MIN_SIZE = 512  # below this, auto never compresses (header + call cost outweigh gains)
EXPLICIT_MIN_SIZE = 64  # an explicit codec still skips values this small
AUTO_SAMPLE = 64 * 1024  # auto compresses the first 64 KiB with zstd-1 to decide
AUTO_MIN_SAVING = 0.10  # ... and compresses only if that sample shrinks by >= 10 %

_local = threading.local()


def _zstd_c(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zc", None)
    if cache is None:
        cache = _local.zc = {}
    comp = cache.get(level)
    if comp is None:
        import zstandard

        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _zstd_d() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "zd", None)
    if dec is None:
        import zstandard

        dec = _local.zd = zstandard.ZstdDecompressor()
    return dec


def _zstd_compress(data: BytesLike, level: int) -> bytes:
    out: bytes = _zstd_c(max(1, min(level, 22))).compress(data)
    return out


def _zstd_decompress(data: BytesLike, raw_len: int) -> bytes:
    out: bytes = _zstd_d().decompress(data, max_output_size=raw_len)
    return out


def _zlib_compress(data: BytesLike, level: int) -> bytes:
    return zlib.compress(data, max(1, min(level, 9)))


def _zlib_decompress(data: BytesLike, raw_len: int) -> bytes:
    return zlib.decompress(data, bufsize=max(raw_len, 1))


def _lz4_compress(data: BytesLike, level: int) -> bytes:
    import lz4.frame

    out: bytes = lz4.frame.compress(bytes(data), compression_level=max(0, min(level, 16)))
    return out


def _lz4_decompress(data: BytesLike, raw_len: int) -> bytes:
    import lz4.frame

    out: bytes = lz4.frame.decompress(bytes(data))
    return out


def _none_compress(data: BytesLike, level: int) -> bytes:
    return bytes(data)


def _none_decompress(data: BytesLike, raw_len: int) -> bytes:
    return bytes(data)


@dataclass(frozen=True)
class Codec:
    """One codec: its name, its header id, and its two functions."""

    name: str
    id: int
    compress: Callable[[BytesLike, int], bytes]
    decompress: Callable[[BytesLike, int], bytes]  # (stored, raw_len) -> raw


CODECS: tuple[Codec, ...] = (
    Codec("none", 0, _none_compress, _none_decompress),
    Codec("zlib", 1, _zlib_compress, _zlib_decompress),
    Codec("zstd", 2, _zstd_compress, _zstd_decompress),
    Codec("lz4", 3, _lz4_compress, _lz4_decompress),
)
BY_NAME: dict[str, Codec] = {c.name: c for c in CODECS}
BY_ID: dict[int, Codec] = {c.id: c for c in CODECS}
NONE = BY_NAME["none"]
ZSTD = BY_NAME["zstd"]


def compress(codec: str, data: BytesLike, level: int = 1) -> bytes:
    """Compress ``data`` with the named codec (KeyError for an unknown name)."""
    return BY_NAME[codec].compress(data, level)


def decompress(codec_id: int, data: BytesLike, raw_len: int) -> bytes:
    """Undo :func:`compress` given the header's codec id and the raw length it recorded."""
    return BY_ID[codec_id].decompress(data, raw_len)


def choose_codec(setting: str, data: BytesLike, level: int = 1) -> tuple[Codec, BytesLike]:
    """Pick the codec for one value and return ``(codec, stored_bytes)``.

    ``auto``: zstd only for values >= 512 B whose first 64 KiB shrink by >= 10 % at
    zstd-1, so fp16 weights (ratio ~1.09) are stored raw and cost no decompression on
    read, while token ids and JSON (2-3x) are compressed. An explicit codec always
    applies except to values under 64 B. Whatever is chosen, a result that is not
    smaller than the input is stored raw (codec ``none``). Costs one zstd-1 pass over at
    most 64 KiB for the ``auto`` decision.
    """
    n = len(data)
    if setting == "none" or n < EXPLICIT_MIN_SIZE:
        return NONE, data
    if setting == "auto":
        if n < AUTO_MIN_SIZE:
            return NONE, data
        sample = data if n <= AUTO_SAMPLE else memoryview(data)[:AUTO_SAMPLE]
        trial = _zstd_compress(sample, 1)
        if len(trial) > len(sample) * (1.0 - AUTO_MIN_SAVING):
            return NONE, data
        if n <= AUTO_SAMPLE and level == 1:
            return ZSTD, trial
        codec = ZSTD
    else:
        codec = BY_NAME[setting]
    out = codec.compress(data, level)
    if len(out) >= n:
        return NONE, data
    return codec, out
