"""Orphan chunks are swept under every maxmemory policy; clean --grace; Redis bytes per byte."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from llamacache.config import resolve
from llamacache.config.settings import CHUNK_SIZE
from llamacache.manager import CacheManager
from llamacache.ops import network_admin as na
from tests.cli.helpers import run
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _manager(url: str, root: Path) -> CacheManager:
    env = {
        "LLAMACACHE_NETWORK_URL": url,
        "LLAMACACHE_NETWORK_KEY_PREFIX": "cap:",
        "LLAMACACHE_NETWORK_CHUNK_SIZE": "64KiB",
        "LLAMACACHE_DISK_PATH": str(root),
    }
    return CacheManager(resolve(env=env))


def _orphan_chunks(url: str, n: int) -> int:
    client = redis.Redis.from_url(url)
    for i in range(n):
        client.set(f"cap:model:{{{os.urandom(16).hex()}.65536}}:c:{i}", b"x" * 100)
    return n


@pytest.mark.parametrize("policy", ["allkeys-lfu", "volatile-lfu", "allkeys-lru", "noeviction"])
def test_orphans_swept_under_every_policy(
    private_redis: RedisServer, tmp_path: Path, policy: str
) -> None:
    private_redis.start("--maxmemory", "100mb", "--maxmemory-policy", policy)
    m = _manager(private_redis.url, tmp_path / "root")
    m.cache("model").put("kept", os.urandom(200_000))  # live chunks: never swept
    _orphan_chunks(private_redis.url, 5)
    assert na.clean_network(m, "model", grace=1.0).chunks == 0  # too young (or first seen)
    time.sleep(1.1)
    assert na.clean_network(m, "model", grace=1.0).chunks == 5
    assert m.cache("model").get("kept") is not None
    client = redis.Redis.from_url(private_redis.url)
    assert len(list(client.scan_iter(match="cap:model:{*}:c:*"))) == 4  # 200 kB / 64 KiB
    m.close()


def test_clean_grace_option(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", redis_server.url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", "cap:")
    _orphan_chunks(redis_server.url, 3)
    kept = run("clean", "--tier", "network", "-c", "model", "--grace", "1h")
    assert kept.returncode == 0, kept.stderr
    time.sleep(1.1)
    swept = run("clean", "--tier", "network", "-c", "model", "--grace", "1s", "--json")
    assert swept.returncode == 0, swept.stderr
    assert b'"chunks": 3' in swept.stdout
    local = run("clean", "--grace", "1s")
    assert local.returncode == 2 and b"--tier network" in local.stderr


def test_default_chunk_costs_about_one_byte_per_byte(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("cap:probe", b"\0" * CHUNK_SIZE)
    used = client.memory_usage("cap:probe")
    client.delete("cap:probe")
    assert used is not None and used / CHUNK_SIZE <= 1.01
