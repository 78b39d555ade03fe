"""The disk tier on a real diskcache directory: policies, eviction, keys, crash safety."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from llamacache.config.settings import CacheSettings
from llamacache.engine import framing
from llamacache.engine.disk import DiskTier
from llamacache.errors import CorruptEntryError

KB = 1024


def settings(tmp_path: Path, **kw: object) -> CacheSettings:
    base = CacheSettings(
        name="c", path=tmp_path / "c", disk_size=10**9, memory_size=0, compression="none"
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def put(tier: DiskTier, key: object, value: bytes, **kw: object) -> None:
    meta, payload = framing.encode(value, tier.settings, key)
    tier.put(key, meta, payload, **kw)  # type: ignore[arg-type]


def fill(tier: DiskTier, keys: range, size: int) -> None:
    for k in keys:
        put(tier, k, os.urandom(size))
        time.sleep(0.002)  # distinct store/access times


def test_put_get_inline_and_file(tmp_path: Path) -> None:
    tier = DiskTier(settings(tmp_path, file_threshold=1000))
    put(tier, "small", b"s" * 10)
    put(tier, "big", b"b" * 5000)
    meta, payload = tier.get("big")  # type: ignore[misc]
    assert framing.decode(meta, payload, "c", "big") == b"b" * 5000
    assert tier.path_of("small") is None
    path = tier.path_of("big")
    assert path is not None and path.is_file() and path.is_relative_to(tier.directory)
    assert tier.get("nope") is None and tier.count() == 2 and tier.contains("small")
    assert tier.remove("big") and not path.exists() and not tier.remove("big")
    assert tier.clear() == 1 and tier.count() == 0
    assert not list((tier.directory / "tmp").iterdir())


def _evict_setup(tmp_path: Path, policy: str, **kw: object) -> DiskTier:
    # 20 file-backed values of 10 KB: files dominate, so the byte accounting is exact
    return DiskTier(settings(tmp_path, policy=policy, disk_size=1_000_000, file_threshold=KB, **kw))


def _evict_half(tier: DiskTier) -> set[object]:
    target = tier.used_bytes() - 10 * 10 * KB
    result = tier.evict_to(target)
    assert result.count >= 10 and tier.used_bytes() <= target
    return {k for k in range(20) if not tier.contains(k)}


def test_lru_honours_batched_accesses(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "lru")
    fill(tier, range(20), 10 * KB)
    for k in range(10):  # the oldest ten are read, through the batched recorder
        assert tier.get(k) is not None
        time.sleep(0.002)
    tier.record_access(3)  # a memory-front hit reported by the tiered cache
    gone = _evict_half(tier)
    assert gone and gone <= set(range(10, 20))


def test_lru_access_from_another_tier_object_persists(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "lru")
    fill(tier, range(20), 10 * KB)
    for k in range(10):
        tier.record_access(k)
    tier.close()  # flushes at close
    again = _evict_setup(tmp_path, "lru")
    assert _evict_half(again) <= set(range(10, 20))


def test_fifo_ignores_reads(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "fifo")
    fill(tier, range(20), 10 * KB)
    for k in range(10):
        tier.get(k)
    assert tier._acount == {}  # fifo records nothing
    assert _evict_half(tier) <= set(range(10))


def test_lfu_evicts_least_frequent(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "lfu")
    fill(tier, range(20), 10 * KB)
    for k in range(10):
        for _ in range(3):
            tier.get(k)
    tier.flush_access()
    assert _evict_half(tier) <= set(range(10, 20))


def test_size_evicts_largest_first(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "size")
    for k in range(20):
        put(tier, k, os.urandom((k + 1) * 2 * KB))
    tier.evict_to(tier.used_bytes() - 60 * KB)
    assert not tier.contains(19) and not tier.contains(18) and tier.contains(0)


def test_time_policy_expires_after_max_age(tmp_path: Path) -> None:
    tier = _evict_setup(tmp_path, "time", max_age=0.2)
    put(tier, "a", b"x" * 2000)
    put(tier, "b", b"y" * 10, expire=100.0)  # explicit ttl wins over max_age
    assert tier.get("a") is not None
    time.sleep(0.3)
    assert tier.get("a") is None and tier.get("b") is not None
    assert tier.expire().count == 1 and tier.count() == 1


def test_none_never_evicts(tmp_path: Path) -> None:
    tier = DiskTier(settings(tmp_path, policy="none", disk_size=50 * KB, file_threshold=KB))
    fill(tier, range(20), 10 * KB)
    assert tier.count() == 20 and tier.used_bytes() > 50 * KB
    assert tier.evict_to(0).count == 0


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu", "size", "time"])
def test_puts_keep_volume_under_threshold(tmp_path: Path, policy: str) -> None:
    size, thr = 400_000, 0.8
    tier = DiskTier(
        settings(tmp_path, policy=policy, disk_size=size, eviction_threshold=thr, file_threshold=KB)
    )
    for k in range(100):
        put(tier, k, os.urandom(10 * KB))
        assert tier.used_bytes() <= thr * size + 10 * KB + 4096
    assert tier.used_bytes() <= thr * size
    assert tier.evictions > 0 and 20 < tier.count() < 40


def test_small_inline_values_lru_evicts_oldest_not_everything(tmp_path: Path) -> None:
    tier = DiskTier(settings(tmp_path, policy="fifo", disk_size=1_000_000))
    for k in range(8000):
        put(tier, k, os.urandom(100))
    # eviction began; it removed the oldest and kept a useful share of the cache
    assert not tier.contains(0) and tier.contains(7999)
    assert tier.count() > 2000 and tier.used_bytes() <= 0.9 * 1_000_000 + 8192


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "/etc/passwd", "a/../../b", "\x00", "..", b"../x", ("..", "/")]
)
def test_path_like_keys_stay_inside(tmp_path: Path, key: object) -> None:
    root = tmp_path / "c"
    tier = DiskTier(settings(tmp_path, file_threshold=10))
    before = set(tmp_path.rglob("*"))
    put(tier, key, b"secret" * 10)
    meta, payload = tier.get(key)  # type: ignore[misc]
    assert framing.decode(meta, payload, "c", key) == b"secret" * 10
    created = set(tmp_path.rglob("*")) - before
    assert created and all(p.resolve().is_relative_to(root.resolve()) for p in created)
    path = tier.path_of(key)
    assert path is not None and path.name.endswith(".val") and "etc" not in path.parts


class _Exploding:
    """A file-like source that fails half-way through, like a dropped network stream."""

    def __init__(self, directory: Path) -> None:
        self.calls = 0
        self.directory = directory

    def read(self, n: int) -> bytes:
        self.calls += 1
        # while the copy is in progress only a temp file exists, never a final .val
        assert not list(self.directory.rglob("*.val"))
        if self.calls > 3:
            raise OSError(5, "stream broke")
        return os.urandom(min(n, 100_000))


def _val_files(tier: DiskTier) -> list[Path]:
    return [p for p in tier.directory.rglob("*") if p.suffix in (".val", ".tmp")]


def test_failed_put_file_leaves_nothing(tmp_path: Path) -> None:
    from llamacache.errors import CacheIOError

    tier = DiskTier(settings(tmp_path))
    with pytest.raises(CacheIOError):
        tier.put_file("k", _Exploding(tier.directory))  # type: ignore[arg-type]
    assert tier.count() == 0 and _val_files(tier) == []


def test_failed_index_insert_removes_file(tmp_path: Path) -> None:
    tier = DiskTier(settings(tmp_path, file_threshold=10))
    con = sqlite3.connect(tier.directory / "cache.db")
    con.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON Cache BEGIN"
        " SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    con.commit()
    con.close()
    with pytest.raises(Exception, match="cache 'c'"):
        put(tier, "k", b"x" * 1000)
    assert tier.count() == 0 and _val_files(tier) == []


def test_put_file_streams_and_records_digest(tmp_path: Path) -> None:
    src = tmp_path / "weights.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)
    src.write_bytes(data)
    tier = DiskTier(settings(tmp_path))
    meta = tier.put_file("w", src)
    assert meta.kind == "rawfile" and meta.raw_len == len(data)
    path = tier.path_of("w")
    assert path is not None and path.read_bytes() == data
    with tier.open("w") as f:  # type: ignore[union-attr]
        assert framing.verify_payload(meta, f)
    assert not list((tier.directory / "tmp").iterdir())


def test_access_side_table_backfills_a_cache_written_without_it(tmp_path: Path) -> None:
    import diskcache

    raw = diskcache.Cache(str(tmp_path / "c"), eviction_policy="none")
    for k in range(5):
        raw.set(k, b"v")
    raw.close()
    tier = DiskTier(settings(tmp_path, policy="lru"))
    con = tier._cache._con
    assert con.execute("SELECT count(*) FROM LlcAccess").fetchone() == (5,)
    with pytest.raises(CorruptEntryError, match="damaged index row"):
        tier.get(0)  # a row with no llamacache header is never served
    tier.record_access(0)
    tier.flush_access()
    ((count,),) = con.execute(
        "SELECT a.access_count FROM LlcAccess a JOIN Cache c ON c.rowid = a.rowid WHERE c.key = 0"
    ).fetchall()
    assert count == 1
    tier.remove(0)  # the delete trigger keeps the side table in step
    assert con.execute("SELECT count(*) FROM LlcAccess").fetchone() == (4,)
    tier.close()


def test_memory_front_hits_keep_entries_on_disk_under_lru(tmp_path: Path) -> None:
    from llamacache.engine import TieredCache

    s = settings(tmp_path, policy="lru", disk_size=1_000_000, file_threshold=KB)
    with TieredCache(replace(s, memory_size=10**7)) as tc:
        for k in range(20):
            tc.put(k, os.urandom(10 * KB))  # kept in the memory front too
            time.sleep(0.002)
        time.sleep(0.01)
        for k in range(10):  # the oldest ten, hit in memory only
            assert tc.memory.get(k) is not None
            tc.get(k)
        tc.stats()  # memory hits are tallied in bulk (at a tick, or when counters are read)
        assert tc.disk._acount  # noted without touching the index
        tier = tc.disk
        target = tier.used_bytes() - 10 * 10 * KB
        tier.evict_to(target)  # flushes the noted hits first
        gone = {k for k in range(20) if not tier.contains(k)}
        assert gone and gone <= set(range(10, 20))


def test_admin_index_reader_sees_batched_recency(tmp_path: Path) -> None:
    from llamacache.engine import index

    tier = DiskTier(settings(tmp_path, policy="lru"))
    fill(tier, range(6), 100)
    for k in (0, 1, 2):  # read the oldest three: they become the most recent
        tier.get(k)
    tier.close()
    with index.Snapshot(tier.directory) as snap:
        order = [row.key_text for row in snap.rows(order="access_time")]
    assert order[:3] == ["3", "4", "5"] and sorted(order[3:]) == ["0", "1", "2"]


def test_digest_files_parallel_matches_one_process_and_xxhsum(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess

    from llamacache.engine import checksums

    paths = []
    for i, size in enumerate((0, 1, 70_000, 3 * 2**20, 12_345)):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(size))
        paths.append(str(p))
    paths.append(str(tmp_path / "missing"))
    serial = checksums.digest_files_parallel("xxh3", paths, jobs=1)
    forked = checksums.digest_files_parallel("xxh3", paths, jobs=3)
    assert forked == serial  # same order, same bytes, the same error text for the lost file
    assert isinstance(serial[-1], str) and "missing" in serial[-1]
    for path, d in zip(paths[:-1], serial[:-1], strict=True):
        with open(path, "rb") as f:
            assert d == checksums.digest("xxh3", f.read())
    assert checksums.digest_files_parallel("blake3", paths[:3], jobs=2)[2] == checksums.digest(
        "blake3", Path(paths[2]).read_bytes()
    )
    tool = shutil.which("xxhsum")
    if tool is not None:  # the same digest the standard tool prints
        out = subprocess.run([tool, "-H128", paths[3]], capture_output=True, text=True).stdout
        assert out.split()[0] == bytes(serial[3]).hex()  # type: ignore[arg-type]
