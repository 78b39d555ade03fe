"""Two processes with their own memory fronts and disks over one server; failures mid-run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.network.helpers import MB, net_settings, network_of, tiered
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


class Peer:
    def __init__(self, url: str, prefix: str, path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.network.peer", url, prefix, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def peer_factory() -> Iterator[list[Peer]]:
    peers: list[Peer] = []
    yield peers
    for p in peers:
        p.close()


def test_two_processes_see_each_others_writes(
    redis_server: RedisServer, tmp_path: Path, peer_factory: list[Peer]
) -> None:
    net = net_settings(redis_server.url)
    here = tiered(tmp_path / "here", net)
    assert network_of(here).listener.ready.wait(5)
    peer = Peer(redis_server.url, net.key_prefix, tmp_path / "there")
    peer_factory.append(peer)
    windows = []
    for i in range(20):
        here.get(f"k{i % 3}")  # a copy in our memory front (or a miss)
        assert peer.ask(f"put k{i % 3} v{i}") == "ok"
        t0 = time.perf_counter()
        while here.get(f"k{i % 3}") != f"v{i}":
            assert time.perf_counter() - t0 < 10, "stale value was never invalidated"
            time.sleep(0.0002)
        windows.append(time.perf_counter() - t0)
        # and the other way: our write reaches the peer, whose memory front held the old one
        here.put(f"k{i % 3}", f"w{i}")
        assert float(peer.ask(f"wait k{i % 3} w{i}")) < 10_000
    windows.sort()
    print(
        f"stale window after the writer's put returned: p50 {windows[10] * 1e3:.2f} ms, "
        f"max {windows[-1] * 1e3:.2f} ms"
    )
    assert network_of(here).listener.received > 0
    here.close()


def test_killed_writer_leaves_no_manifest(
    redis_server: RedisServer, tmp_path: Path, peer_factory: list[Peer]
) -> None:
    net = net_settings(redis_server.url)
    peer = Peer(redis_server.url, net.key_prefix, tmp_path / "writer")
    peer_factory.append(peer)
    assert peer.ask("killwrite model 5") == ""
    assert peer.proc.wait(10) == -9
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists(f"{net.key_prefix}default:e:s:model") == 0
    orphans = list(client.scan_iter(match=f"{net.key_prefix}default:*:c:*"))
    assert 1 <= len(orphans) <= 5
    reader = tiered(tmp_path / "reader", net)
    assert reader.get("model") is None
    reader.close()


def test_server_killed_mid_run_local_tiers_keep_serving(
    private_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private_redis.start()
    net = net_settings(private_redis.url)
    c = tiered(tmp_path / "c", net, retry_interval=0.5)
    tier = network_of(c)
    assert tier.listener.ready.wait(5)
    c.put("in-memory", b"m")
    c.put("on-disk", os.urandom(MB))
    c.memory.discard("on-disk")
    private_redis.kill()
    caplog.set_level(logging.WARNING, "llamacache.network")
    t0 = time.monotonic()
    for i in range(200):
        assert c.get("in-memory") == b"m"
        assert len(c.get("on-disk")) == MB
        c.put(f"new{i}", b"n")  # write_error_policy "local": the put succeeds locally
        assert c.get(f"new{i}") == b"n"
        assert c.get(f"absent{i}") is None
    elapsed = time.monotonic() - t0
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert 1 <= len(warnings) <= 2 + elapsed / 0.5  # one per interval, not one per call
    # The server comes back: after the retry interval the tier works again.
    private_redis.start()
    time.sleep(0.6)
    c.put("after", b"a")
    assert tier.get("after") is not None
    deadline = time.monotonic() + 10
    while not tier.listener.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tier.listener.resets >= 1  # the memory front was dropped while we were blind
    c.close()


def test_maxmemory_eviction_of_chunks_is_survived(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    private_redis.start("--maxmemory", "6mb", "--maxmemory-policy", "allkeys-lru")
    net = net_settings(private_redis.url, chunk_size=64 * 1024)
    writer = tiered(tmp_path / "w", net)
    values = {f"v{i}": os.urandom(MB + i) for i in range(12)}
    for k, v in values.items():
        writer.put(k, v)
    info = redis.Redis.from_url(private_redis.url).info("stats")
    assert info["evicted_keys"] > 0
    reader = tiered(tmp_path / "r", net)
    outcomes = {k: reader.get(k) for k in values}
    assert all(got is None or got == values[k] for k, got in outcomes.items())
    assert any(got is None for got in outcomes.values())
    assert network_of(reader).chunk_misses + network_of(reader).misses > 0
    writer.close()
    reader.close()


def test_own_writes_keep_the_memory_copy_foreign_ones_drop_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    net = net_settings(redis_server.url)
    here = tiered(tmp_path / "here", net)
    other = tiered(tmp_path / "other", net)
    assert network_of(here).listener.ready.wait(5)
    here.put("mine", b"1")
    here.put("theirs", b"1")
    other.put("theirs", b"2")  # invalidations arrive in order: ours first, then this one
    deadline = time.monotonic() + 10
    while "theirs" in here.memory and time.monotonic() < deadline:
        time.sleep(0.001)
    assert "theirs" not in here.memory
    assert "mine" in here.memory  # the echo of our own write was recognised and skipped
    assert here.get("theirs") == b"2"  # and the stale disk copy was not served
    here.close()
    other.close()
