"""The network tier against a real redis-server: round trips, chunks, signing, modes."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from pathlib import Path

import pytest
import redis

from llamacache.engine import netformat as nf
from llamacache.engine.protocol import CacheTier
from llamacache.errors import NetworkTierError
from tests.network.helpers import MB, net_settings, network_of, tiered
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_small_values_round_trip_and_backfill(redis_server: RedisServer, tmp_path: Path) -> None:
    net = net_settings(redis_server.url)
    a = tiered(tmp_path / "a", net)
    b = tiered(tmp_path / "b", net)
    assert isinstance(network_of(a), CacheTier)  # usable wherever a tier is (bench, warm)
    a.put("k", b"value")
    a.put(("run", 3), "text")
    assert b.get("k") == b"value"
    assert b.get(("run", 3)) == "text"
    assert network_of(b).hits == 2
    assert b.disk.get("k") is not None  # backfilled
    assert b.get("absent", "d") == "d"
    assert b.stats()["network"].hits == 2
    assert b.remove("k")
    time.sleep(a.settings.coherence_interval + 0.05)
    assert a.get("k") is None  # a delete reaches other machines' local copies too
    assert not a.disk.contains("k")
    assert network_of(a).get("k") is None
    a.close()
    b.close()


def _write_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // MB):
            block = os.urandom(64) * (MB // 64) if i % 2 else os.urandom(MB)
            f.write(block)
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
def test_64mb_file_is_chunked_and_streamed_with_bounded_memory(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    net = net_settings(redis_server.url)
    src = tmp_path / "model.bin"
    digest = _write_file(src, 64 * MB)
    a = tiered(tmp_path / "a", net, batch_bytes=4 * MB)
    b = tiered(tmp_path / "b", net, batch_bytes=4 * MB)
    tracemalloc.start()
    try:
        a.put_file("model", src)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        path = b.get_path("model")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    client = redis.Redis.from_url(redis_server.url)
    chunks = list(client.scan_iter(match=f"{net.key_prefix}default:{{*}}:c:*", count=1000))
    assert len(chunks) == 64
    assert path is not None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MB):
            h.update(block)
    assert h.hexdigest() == digest
    # Neither side held the 64 MB value: a few batches of 1 MiB chunks at most.
    assert put_peak < 24 * MB, put_peak
    assert get_peak < 24 * MB, get_peak
    a.close()
    b.close()


def test_large_in_memory_value_round_trips(redis_server: RedisServer, tmp_path: Path) -> None:
    net = net_settings(redis_server.url, chunk_size=256 * 1024)
    a = tiered(tmp_path / "a", net)
    b = tiered(tmp_path / "b", net)
    value = os.urandom(3 * MB + 17)
    a.put("big", value)
    assert b.get("big") == value
    a.close()
    b.close()


def _chunk_keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    return sorted(client.scan_iter(match=f"{prefix}*:c:*", count=1000))


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_missing_or_flipped_chunk_is_a_miss(
    redis_server: RedisServer, tmp_path: Path, damage: str
) -> None:
    net = net_settings(redis_server.url, chunk_size=64 * 1024)
    a = tiered(tmp_path / "a", net)
    a.put("big", os.urandom(300 * 1024))
    client = redis.Redis.from_url(redis_server.url)
    victim = _chunk_keys(redis_server.url, net.key_prefix)[2]
    if damage == "delete":
        client.delete(victim)
    else:
        data = bytearray(client.get(victim))  # type: ignore[arg-type]
        data[100] ^= 0xFF
        client.set(victim, bytes(data))
    b = tiered(tmp_path / "b", net)
    assert b.get("big", "miss") == "miss"
    assert network_of(b).chunk_misses == 1
    assert b.disk.get("big") is None  # nothing short or corrupt was backfilled
    assert not list((tmp_path / "b").glob("tmp/*"))  # no half-written temp file either
    a.close()
    b.close()


def test_signing_rejects_unsigned_and_badly_signed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = "signed:"
    plain = tiered(tmp_path / "w0", net_settings(redis_server.url, prefix))
    other = tiered(tmp_path / "w1", net_settings(redis_server.url, prefix, signing_key="wrong"))
    good = tiered(tmp_path / "w2", net_settings(redis_server.url, prefix, signing_key="s3cret"))
    reader = tiered(tmp_path / "r", net_settings(redis_server.url, prefix, signing_key="s3cret"))
    plain.put("unsigned", b"x")
    other.put("badsig", b"y")
    good.put("ok", b"z")
    # A rejected record is a network miss, counted; never an error.
    assert reader.get("unsigned", "miss") == "miss"
    assert reader.get("badsig", "miss") == "miss"
    assert reader.get("ok") == b"z"
    assert network_of(reader).rejected == 2
    # A record copied under another key fails too (the key is signed).
    client = redis.Redis.from_url(redis_server.url)
    client.copy(f"{prefix}default:e:s:ok", f"{prefix}default:e:s:moved")
    assert reader.get("moved", "miss") == "miss"
    # With on_corrupt = "miss" too: the shared record is left alone (it may be another
    # team's key), and nothing is written locally.
    lenient = tiered(
        tmp_path / "l", net_settings(redis_server.url, prefix, signing_key="s3cret"),
        on_corrupt="miss",
    )  # fmt: skip
    assert lenient.get("badsig", "miss") == "miss"
    assert client.exists(f"{prefix}default:e:s:badsig")
    assert lenient.disk.get("badsig") is None
    for c in (plain, other, good, reader, lenient):
        c.close()


def test_read_only_mode_never_writes(redis_server: RedisServer, tmp_path: Path) -> None:
    net = net_settings(redis_server.url)
    rw = tiered(tmp_path / "rw", net)
    rw.put("shared", b"v")
    client = redis.Redis.from_url(redis_server.url)
    ro_net = net_settings(redis_server.url, net.key_prefix, mode="read-only")
    ro = tiered(tmp_path / "ro", ro_net)
    before = client.info("stats")["total_commands_processed"], client.dbsize()
    writes_before = client.info("commandstats")
    ro.put("local-only", b"x")
    ro.put("big", os.urandom(3 * MB))
    ro.remove("shared")
    ro.clear()
    writes_after = client.info("commandstats")
    for cmd in ("cmdstat_set", "cmdstat_unlink", "cmdstat_del"):
        assert writes_after.get(cmd, {}).get("calls") == writes_before.get(cmd, {}).get("calls")
    assert client.dbsize() == before[1]
    assert network_of(rw).get("shared") is not None  # the shared copy is untouched
    rw.close()
    ro.close()


def test_write_error_policy_all_fails_the_put_and_leaves_nothing(
    redis_binary: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    private_redis.start()
    net = net_settings(private_redis.url, write_error_policy="all")
    c = tiered(tmp_path / "c", net)
    private_redis.kill()
    with pytest.raises(NetworkTierError, match="failed"):
        c.put("k", b"v")
    assert c.disk.get("k") is None
    assert c.get("k") is None
    c.close()


def test_key_encoding_round_trips() -> None:
    for key in ("a:b", b"\x00\xff", 12, -3, 1.5, ("run", 3, None, True), "ünï"):
        assert nf.decode_key(nf.encode_key(key)) == key
    hashed = nf.encode_key(frozenset({1, 2}))
    assert hashed.startswith("h:")
    assert nf.decode_key(hashed) is None
    assert nf.chunk_count(0, 10) == 1
    assert nf.chunk_count(21, 10) == 3
    k = nf.chunk_key("p:", "model", b"\xab\xcd", 4096, 7)
    assert k == "p:model:{abcd.4096}:c:7"
    assert nf.chunk_address(k) == "abcd.4096"
