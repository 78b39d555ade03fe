"""The network tier's admin ops against a real server: inspect, ls, verify, evict, clean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from llamacache.config import resolve
from llamacache.errors import NetworkTierError, UsageError
from llamacache.manager import CacheManager
from llamacache.ops import network_admin as na
from llamacache.ops import network_verify as nv
from tests.network.helpers import MB
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _manager(url: str, prefix: str, tmp_path: Path, **extra: str) -> CacheManager:
    env = {
        "LLAMACACHE_NETWORK_URL": url,
        "LLAMACACHE_NETWORK_KEY_PREFIX": prefix,
        "LLAMACACHE_NETWORK_CHUNK_SIZE": "64KiB",
        "LLAMACACHE_DISK_PATH": str(tmp_path / "root"),
        **extra,
    }
    return CacheManager(resolve(env=env))


def test_manager_wires_the_tier_and_opt_out(redis_server: RedisServer, tmp_path: Path) -> None:
    m = _manager(redis_server.url, "wire:", tmp_path, LLAMACACHE_TRAINING_NETWORK="false")
    assert [t.name for t in m.cache("model").lower] == ["network"]
    assert m.cache("training").lower == []
    m.cache("model").put("k", b"v")
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists("wire:model:e:s:k") == 1
    m.close()


def test_inspect_ls_verify_evict_clean(redis_server: RedisServer, tmp_path: Path) -> None:
    m = _manager(redis_server.url, "adm:", tmp_path)
    c = m.cache("model")
    c.put("small", b"s" * 100)
    big = os.urandom(MB // 2)
    c.put("big", big)
    c.put("other", b"o")

    (info,) = na.inspect_network(m, "model").caches
    assert info.reachable and info.server_version
    assert info.entries == 3 and info.chunks == 8
    assert na.inspect_network(m, "model").to_json()["schema"] == "llamacache.network.inspect"

    listing = na.list_network(m, "model", top=1)
    assert [(e.key, e.chunked, e.bytes) for e in listing.entries] == [("big", True, MB // 2)]
    assert listing.entries[0].memory_usage and listing.entries[0].memory_usage >= MB // 2
    assert sorted(e.key for e in na.list_network(m, "model").entries) == ["big", "other", "small"]

    assert nv.verify_network(m, "model").problems == ()
    client = redis.Redis.from_url(redis_server.url)
    victim = sorted(client.scan_iter(match="adm:model:{*}:c:*"))[3]
    client.delete(victim)
    report = nv.verify_network(m, "model")
    assert [p.key for p in report.problems] == ["big"]
    assert "missing chunk" in report.problems[0].problem
    assert victim.decode() in report.problems[0].problem

    planned = na.evict_network(m, "model", "b*", dry_run=True)
    assert planned.keys == ("big",) and client.exists("adm:model:e:s:big")
    done = na.evict_network(m, "model", "b*")
    assert done.entries == 1 and not client.exists("adm:model:e:s:big")
    assert done.chunks == 7  # the evicted entry's chunks go with it
    assert not list(client.scan_iter(match="adm:model:{*}:c:*"))
    assert na.clean_network(m, "model", grace=0).chunks == 0
    assert na.inspect_network(m, "model").caches[0].entries == 2
    m.close()


def test_verify_names_a_flipped_chunk(redis_server: RedisServer, tmp_path: Path) -> None:
    m = _manager(redis_server.url, "flip:", tmp_path)
    m.cache("model").put("w", os.urandom(200_000))
    client = redis.Redis.from_url(redis_server.url)
    victim = sorted(client.scan_iter(match="flip:model:{*}:c:*"))[0]
    data = bytearray(client.get(victim))  # type: ignore[arg-type]
    data[0] ^= 1
    client.set(victim, bytes(data))
    (problem,) = nv.verify_network(m, "model").problems
    assert problem.key == "w" and "digest mismatch" in problem.problem
    m.close()


def test_unreachable_and_unconfigured(private_redis: RedisServer, tmp_path: Path) -> None:
    private_redis.start()
    m = _manager(private_redis.url, "down:", tmp_path)
    private_redis.kill()
    (info,) = na.inspect_network(m, "model").caches
    assert not info.reachable and info.error
    with pytest.raises(NetworkTierError, match="unreachable"):
        na.list_network(m, "model")
    plain = CacheManager(resolve(env={"LLAMACACHE_DISK_PATH": str(tmp_path / "p")}))
    with pytest.raises(UsageError, match="no network tier"):
        nv.verify_network(plain, "model")


def test_the_tier_verifies_its_own_records(redis_server: RedisServer, tmp_path: Path) -> None:
    """``NetworkTier.verify_records``: one result per record, checked by the tier itself."""
    m = _manager(redis_server.url, "own:", tmp_path)
    c = m.cache("model")
    c.put("small", b"s" * 100)
    c.put(("t", 1), b"t")
    c.put("big", os.urandom(200_000))
    tier = na.tier_for(m, "model")
    found = {r.key: (r.problem, r.bytes) for r in tier.verify_records()}
    assert found == {"small": (None, 100), "('t', 1)": (None, 1), "big": (None, 200_000)}
    client = redis.Redis.from_url(redis_server.url)
    client.set("own:model:e:s:small", b"LN junk")
    client.delete(sorted(client.scan_iter(match="own:model:{*}:c:*"))[-1])
    found = {r.key: r.problem for r in tier.verify_records()}
    assert found["('t', 1)"] is None
    assert found["small"] and "record" in found["small"]
    assert found["big"] and found["big"].startswith("missing chunk 3 ")
    m.close()
