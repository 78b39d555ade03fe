"""Every entry is bound to its key: an altered index row never serves another key's value."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from llamacache.config.settings import CacheSettings
from llamacache.engine import framing
from llamacache.engine.tiered import TieredCache
from llamacache.errors import CorruptEntryError, StaleEntryError
from tests.cli.helpers import cli, run

BASE = CacheSettings(name="c", path=Path("/nonexistent"), disk_size=10**9, memory_size=10**8)


def _flip_in_db(db: Path, old: bytes, new: bytes) -> int:
    """Rewrite every copy of ``old`` (table row and index entry) as ``new``: one bit each."""
    flipped = sum(bin(a ^ b).count("1") for a, b in zip(old, new, strict=True))
    assert flipped == 1
    data = db.read_bytes()
    n = data.count(old)
    db.write_bytes(data.replace(old, new))
    return n


def test_one_bit_flip_of_a_row_key_does_not_serve_the_secret(cache_root: Path) -> None:
    assert cli("put", "user:1001", "secret-of-1001").exit_code == 0
    db = cache_root / "default" / "cache.db"
    assert _flip_in_db(db, b"user:1001", b"user:1000") >= 1
    got = run("get", "user:1000")
    assert b"secret-of-1001" not in got.stdout
    assert got.returncode == 1
    assert b"another key" in got.stderr and b"Traceback" not in got.stderr
    quick = run("verify", "--quick")
    assert quick.returncode == 1, quick.stdout + quick.stderr
    assert b"another key" in quick.stdout + quick.stderr


def test_swapped_value_file_and_misdirected_row_are_corrupt(tmp_path: Path) -> None:
    s = replace(BASE, path=tmp_path / "c", file_threshold=100, memory_size=0)
    cache = TieredCache(s, metrics=False)
    cache.put("a", b"A" * 500)
    cache.put("b", b"B" * 500)
    cache.close()
    con = sqlite3.connect(tmp_path / "c" / "cache.db")
    (fb,) = con.execute("SELECT filename FROM Cache WHERE key = 'b'").fetchone()
    # a's row now names b's file (a misdirected row)
    con.execute("UPDATE Cache SET filename = ? WHERE key = 'a'", (fb,))
    # c gets b's whole header and file (a row copied under another key)
    con.execute(
        "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count,"
        " tag, size, mode, filename, value) SELECT 'c', raw, store_time, expire_time,"
        " access_time, access_count, tag, size, mode, filename, value FROM Cache WHERE key='b'"
    )
    con.commit()
    con.close()
    cache = TieredCache(s, metrics=False)
    for key in ("a", "c"):
        with pytest.raises(CorruptEntryError):
            cache.get(key)
    assert cache.get("b") == b"B" * 500
    cache.close()


def test_header_version_is_3_and_old_headers_read_as_a_miss(tmp_path: Path) -> None:
    meta, payload = framing.encode(b"v" * 50, BASE, "k")
    assert meta[2] == framing.VERSION == 3
    parsed = framing.parse_meta(meta)
    assert parsed.key_hash == framing.key_hash("k") and framing.check_key(meta, "k")
    assert not framing.check_key(meta, "k2") and not framing.check_key(b"junk", "k")
    # a version-2 header (no key hash), as written by llamacache before this change
    import struct
    import zlib

    body = struct.pack("<2sBBBBQQ", b"LC", 2, 1, 0, 1, 50, 50) + parsed.digest
    old = body + struct.pack("<I", zlib.crc32(body))
    assert framing.parse_meta(old).version == 2 and framing.parse_meta(old).key_hash is None
    assert not framing.check_key(old, "k")
    with pytest.raises(StaleEntryError):
        framing.decode(old, bytes(payload), "c", "k")
    # through a cache: a stale row is a miss (even with on_corrupt = raise), not a crash
    s = replace(BASE, path=tmp_path / "c", memory_size=0)
    cache = TieredCache(s, metrics=False)
    cache.disk.put("k", old, bytes(payload))
    assert cache.get("k", "default") == "default"
    assert cache.corrupt == 0
    cache.put("k", b"new")
    assert cache.get("k") == b"new"
    cache.close()


@pytest.mark.parametrize("key", ["s", b"s", 7, 7.5, ("t", 1), 2**80, True])
def test_key_hash_distinguishes_types(key: object) -> None:
    others = ["s", b"s", 7, 7.5, ("t", 1), 2**80, True, "7", 1]
    assert framing.key_hash(key) == framing.key_hash(key)
    same = [o for o in others if type(o) is type(key) and o == key]
    assert len(same) == 1
    assert all(framing.key_hash(o) != framing.key_hash(key) for o in others if o is not same[0])


@pytest.mark.parametrize(
    ("column", "planted"),
    [
        ("filename", 7),  # a flipped type byte in the row header: an integer file name
        ("filename", "../../outside/victim.val"),  # a row naming a file outside the cache
        ("filename", b"ab/cd/0123.val"),  # a blob where text belongs
        ("value", 10**12),  # an integer payload (bytes(n) would allocate n bytes)
        ("value", "text payload"),
        ("tag", 12345),
    ],
)
def test_a_damaged_row_is_corrupt_on_every_path(
    cache_root: Path, column: str, planted: object
) -> None:
    assert cli("put", "k", "x" * (5000 if column != "value" else 10)).exit_code == 0
    outside = cache_root.parent / "outside"
    outside.mkdir()
    victim = outside / "victim.val"
    victim.write_bytes(b"not the cache's")
    con = sqlite3.connect(cache_root / "default" / "cache.db")
    if column == "value":
        con.execute("UPDATE Cache SET filename = NULL WHERE key = 'k'")
    con.execute(f"UPDATE Cache SET {column} = ? WHERE key = 'k'", (planted,))
    con.commit()
    con.close()
    s = replace(BASE, name="default", path=cache_root / "default", memory_size=0)
    cache = TieredCache(s, metrics=False)
    for read in (cache.get, cache.get_path, cache.open):
        with pytest.raises(CorruptEntryError, match="damaged index row"):
            read("k")
    cache.close()
    got = run("get", "k")
    assert got.returncode == 1 and got.stdout == b"", got.stderr
    assert b"Traceback" not in got.stderr and b"damaged index row" in got.stderr
    admin = [("verify",), ("inspect",), ("ls",), ("get", "--json", "k"), ("repair",)]
    for args in [*admin, ("evict", "--key", "k", "--yes"), ("clean",)]:
        done = run(*args)
        assert b"Traceback" not in done.stdout + done.stderr, (args, done.stderr)
        assert done.returncode in (0, 1), (args, done.returncode, done.stderr)
    assert run("get", "k").returncode == 1  # gone or still refused, never served
    assert victim.read_bytes() == b"not the cache's"
