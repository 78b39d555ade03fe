"""Framing, codecs and checksums: every codec x kind round-trips; auto decides sensibly."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llamacache.config.settings import CacheSettings
from llamacache.engine import checksums, codecs, framing
from llamacache.errors import CorruptEntryError

BASE = CacheSettings(name="t", path=Path("/nonexistent"), disk_size=10**9, memory_size=10**8)
VALUES = {
    "bytes": b"abc" * 400,
    "str": "héllo wörld " * 100,
    "numpy": np.tile(np.arange(100, dtype=np.int32), 30).reshape(30, 100),
    "pickle": {"tokens": [1, 2, 3, 4] * 300, "name": "x"},
}


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("codec", ["none", "zlib", "zstd", "lz4", "auto"])
@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("algo", ["xxh3", "blake3", "sha256"])
def test_round_trip_every_codec_kind_checksum(codec: str, kind: str, algo: str) -> None:
    settings = replace(BASE, compression=codec, checksum=algo)
    meta, payload = framing.encode(VALUES[kind], settings, "k")
    parsed = framing.parse_meta(meta)
    assert parsed.kind == kind and parsed.checksum == algo
    if codec in ("zlib", "zstd", "lz4", "auto"):
        assert parsed.codec != "none"  # all four values compress well
        assert parsed.stored_len < parsed.raw_len
    out = framing.decode(meta, bytes(payload), "t", "k")
    assert _same(VALUES[kind], out)
    assert framing.verify_payload(meta, bytes(payload))


def test_numpy_comes_back_c_contiguous_and_read_only() -> None:
    arr = np.asfortranarray(np.arange(12, dtype=np.float16).reshape(3, 4))
    meta, payload = framing.encode(arr, BASE, "k")
    out = framing.decode(meta, bytes(payload), "t", "k")
    assert out.flags.c_contiguous and not out.flags.writeable
    assert framing.parse_meta(meta).shape == (3, 4) and framing.parse_meta(meta).dtype == "<f2"
    zero_d = framing.decode(*_enc(np.float64(1.5) * np.ones(())), "t", "k")
    assert zero_d.shape == () and zero_d == 1.5


def _enc(value: object, key: object = "k") -> tuple[bytes, bytes]:
    meta, payload = framing.encode(value, BASE, key)
    return meta, bytes(payload)


def test_object_arrays_are_pickled() -> None:
    arr = np.array([{"a": 1}, None], dtype=object)
    meta, payload = _enc(arr)
    assert framing.parse_meta(meta).kind == "pickle"
    assert framing.decode(meta, payload, "t", "k")[0] == {"a": 1}


def test_auto_stores_incompressible_raw_and_compresses_redundant() -> None:
    noise = np.random.default_rng(0).normal(0, 0.02, 200_000).astype(np.float16)
    for value in (os.urandom(100_000), noise):
        assert framing.parse_meta(_enc(value)[0]).codec == "none"
    doc = json.dumps([{"id": i, "text": "token"} for i in range(2000)])
    for value in (bytes(100_000), doc, np.zeros(50_000, dtype=np.int32)):
        assert framing.parse_meta(_enc(value)[0]).codec == "zstd"
    assert framing.parse_meta(_enc(bytes(500))[0]).codec == "none"  # under 512 B


def test_explicit_codec_skips_tiny_values() -> None:
    meta, _ = framing.encode(bytes(63), replace(BASE, compression="zstd"), "k")
    assert framing.parse_meta(meta).codec == "none"
    meta, _ = framing.encode(bytes(64), replace(BASE, compression="zstd"), "k")
    assert framing.parse_meta(meta).codec == "zstd"


def test_flipped_byte_and_bad_header_raise_naming_cache_and_key() -> None:
    meta, payload = _enc(b"payload" * 20, "key1")
    bad = bytearray(payload)
    bad[5] ^= 1
    with pytest.raises(CorruptEntryError, match=r"cache 'c'.*'key1'.*checksum"):
        framing.decode(meta, bytes(bad), "c", "key1")
    with pytest.raises(CorruptEntryError, match="header"):
        framing.decode(b"XX" + meta[2:], payload, "c", "key1")
    with pytest.raises(CorruptEntryError):
        framing.decode(meta, payload[:-1], "c", "key1")
    assert not framing.verify_payload(meta, bytes(bad))
    with pytest.raises(ValueError):
        framing.parse_meta(b"LC\x01")


def test_ids_are_stable() -> None:
    # ids are written into every entry: renumbering would make old caches unreadable
    assert {c.name: c.id for c in codecs.CODECS} == {"none": 0, "zlib": 1, "zstd": 2, "lz4": 3}
    assert {a.name: a.id for a in checksums.ALGORITHMS} == {"xxh3": 1, "blake3": 2, "sha256": 3}
    assert framing.KIND_ID == {"bytes": 1, "str": 2, "numpy": 3, "pickle": 4, "rawfile": 5}


def test_streaming_hasher_matches_digest() -> None:
    data = os.urandom(10_000)
    for algo in ("xxh3", "blake3", "sha256"):
        h = checksums.hasher(algo)
        h.update(data[:3000])
        h.update(data[3000:])
        assert h.digest() == checksums.digest(algo, data)
