"""TieredCache end to end: promotion, corruption handling, big files, processes, safety."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest

from llamacache.engine import TieredCache, ensure_cache_root
from llamacache.engine.disk import DiskTier
from llamacache.engine.protocol import CacheTier
from llamacache.errors import CorruptEntryError, UnsafeCacheDirError


def settings(tmp_path: Path, name: str = "c", **kw: object):  # type: ignore[no-untyped-def]
    from llamacache.config.settings import CacheSettings

    base = CacheSettings(
        name=name, path=tmp_path / "root" / name, disk_size=10**9, memory_size=10**7
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_round_trip_and_promotion(tmp_path: Path) -> None:
    with TieredCache(settings(tmp_path)) as c:
        c.put("b", b"bytes")
        c.put("arr", np.arange(6, dtype=np.float32).reshape(2, 3))
        c.put("d", {"a": [1, 2]})
        assert c.get("b") == b"bytes" and c.memory.hits == 1
        arr = c.get("arr")
        assert arr.shape == (2, 3) and not arr.flags.writeable
        assert c.get("d") == {"a": [1, 2]}  # disk hit, then promoted
        assert c.get("d") == {"a": [1, 2]} and c.stats()["disk"].hits == 1
        assert "d" in c and len(c) == 3 and set(c.keys()) == {"b", "arr", "d"}
        assert c.get("missing", "dflt") == "dflt"
        assert c.remove("d") and "d" not in c and c.get("d") is None
        assert c.clear() == 2 and len(c.memory) == 0


def test_ttl_applies_to_memory_too(tmp_path: Path) -> None:
    import time

    with TieredCache(settings(tmp_path)) as c:
        c.put("k", b"v", ttl=0.1)
        assert c.get("k") == b"v"
        time.sleep(0.2)
        assert c.get("k") is None


def _flip_inline(cache: TieredCache, key: str) -> None:
    con = sqlite3.connect(cache.disk.directory / "cache.db")
    (value,) = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchone()
    bad = bytearray(value)
    bad[len(bad) // 2] ^= 0xFF
    con.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(bad), key))
    con.commit()
    con.close()


def _flip_file(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("where", ["inline", "file"])
def test_flipped_byte_raises_or_misses(tmp_path: Path, where: str) -> None:
    s = settings(tmp_path, memory_size=0, compression="none")
    with TieredCache(s) as c:
        c.put("k", os.urandom(200 if where == "inline" else 100_000))
        if where == "inline":
            _flip_inline(c, "k")
        else:
            path = c.get_path("k")
            assert path is not None
            _flip_file(path)
        with pytest.raises(CorruptEntryError, match=r"cache 'c': entry 'k' is corrupt"):
            c.get("k")
        if where == "file":
            with pytest.raises(CorruptEntryError), c.open("k") as f:  # type: ignore[union-attr]
                f.read()
    with TieredCache(replace(s, on_corrupt="miss")) as c:
        assert c.get("k", "default") == "default"
        assert "k" not in c and c.stats()["disk"].corrupt == 1


@pytest.mark.slow
def test_put_file_one_gigabyte_streams(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    block = os.urandom(4 * 1024 * 1024)
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(256):  # 1 GiB, written in chunks
            f.write(block)
            h.update(block)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    try:
        with TieredCache(settings(tmp_path, disk_size=4 * 1024**3)) as c:
            meta = c.put_file("model", src)
            assert meta.raw_len == 1024**3
            path = c.get_path("model")
            assert path is not None and path.stat().st_size == 1024**3
            back = hashlib.sha256()
            with c.open("model") as f:  # type: ignore[union-attr]
                while chunk := f.read(4 * 1024 * 1024):
                    back.update(chunk)
            assert back.digest() == h.digest()
            assert proc.memory_info().rss - rss0 < 100 * 1024 * 1024
            assert c.remove("model") and not path.exists()
    finally:
        src.unlink()


def _worker(root: str, wid: int, n: int) -> int:
    from llamacache.config.settings import CacheSettings

    s = CacheSettings(
        name="shared", path=Path(root), disk_size=10**9, memory_size=0, file_threshold=4096
    )
    ok = 0
    with TieredCache(s) as c:
        for i in range(n):
            key = f"w{wid}-{i}"
            body = key.encode() * (1 + (i % 7) * 300)
            c.put(key, body + hashlib.sha256(body).digest())
            other = f"w{1 - wid}-{i // 2}"
            for k in (key, other):
                v = c.get(k)
                if v is not None:
                    body, digest = v[:-32], v[-32:]
                    assert hashlib.sha256(body).digest() == digest and body.startswith(k.encode())
                    ok += 1
    return ok


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    root = tmp_path / "root" / "shared"
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_worker, [(str(root), 0, 150), (str(root), 1, 150)])
    assert all(r >= 150 for r in results)
    with TieredCache(settings(tmp_path, name="shared")) as c:
        assert len(c) == 300


def test_world_writable_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "open"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(UnsafeCacheDirError, match=f"chmod go-w {root}"):
        ensure_cache_root(root)
    cache_dir = tmp_path / "root" / "c"
    cache_dir.mkdir(parents=True)
    cache_dir.chmod(0o770)
    with pytest.raises(UnsafeCacheDirError):
        TieredCache(settings(tmp_path))


def test_root_created_private_with_cachedir_tag(tmp_path: Path) -> None:
    root = ensure_cache_root(tmp_path / "a" / "b")
    assert (root.stat().st_mode & 0o777) == 0o700
    assert (
        (root / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )


def test_lower_tier_hit_backfills_disk_and_memory(tmp_path: Path) -> None:
    lower = DiskTier(settings(tmp_path, name="net"))
    assert isinstance(lower, CacheTier)
    with TieredCache(settings(tmp_path), lower=[lower]) as c:
        c.put("k", "shared value")
        c.disk.remove("k")
        c.memory.clear()
        assert c.get("k") == "shared value"  # from the lower tier
        assert c.disk.contains("k") and "k" in c.memory
        assert c.remove("k") and not lower.contains("k")


def test_cleanup_reports(tmp_path: Path) -> None:
    with TieredCache(
        settings(tmp_path, disk_size=200_000, policy="none", file_threshold=1024)
    ) as c:
        for i in range(30):
            c.put(i, os.urandom(10_000))
        result = c.cleanup()
        assert result.over_limit and result.evicted == 0 and result.used_bytes > 180_000


def test_memory_compression_keeps_compressible_values_packed(tmp_path: Path) -> None:
    """cache.memory.compression = true (the seed's `memory: compression: true`)."""
    text = ("token " * 20_000).encode()  # compresses well
    noise = os.urandom(20_000)  # does not: kept as is
    with TieredCache(settings(tmp_path, memory_compression=True)) as packed:
        packed.put("t", text)
        packed.put("n", noise)
        assert packed.memory.nbytes < len(text) // 10 + len(noise) + 1000
        assert packed.get("t") == text and packed.get("n") == noise
        packed.memory.clear()
        assert packed.get("t") == text  # a disk hit is packed again on promotion
        assert packed.memory.nbytes < len(text) // 10
        assert packed.get("t") == text
    with TieredCache(settings(tmp_path / "plain")) as plain:
        plain.put("t", text)
        assert plain.memory.nbytes == len(text)


def test_put_file_as_names_the_entry_after_its_digest_in_one_pass(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(300_000))
    with TieredCache(settings(tmp_path)) as c:
        key, meta = c.put_file_as(lambda d: f"blob/{d.hex()}", src)
        assert key == f"blob/{meta.digest.hex()}" and meta.raw_len == 300_000
        path = c.get_path(key)
        assert path is not None and path.read_bytes() == src.read_bytes()

        def refuse(digest: bytes) -> str:
            raise ValueError("no name for it")

        before = set(tmp_path.rglob("*.val"))
        with pytest.raises(ValueError):
            c.put_file_as(refuse, src)
        assert set(tmp_path.rglob("*.val")) == before  # nothing left behind
        assert len(c) == 1
