"""Sentinel: the shared tier reaches the master through real Sentinels and follows a failover.

Started by the test on loopback: one master, one replica (``--replicaof``) and one
``redis-server sentinel.conf --sentinel``. A put/get goes through the tier, then
``SENTINEL FAILOVER`` promotes the replica; gets and puts work again within a bound.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cli.helpers import run
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis
SERVICE = "mymaster"
FAILOVER_BOUND = 30.0  # seconds for the switch to be visible through the tier


def _wait(what: str, check: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sentinel_setup(redis_binary: str, tmp_path: Path) -> Iterator[tuple[str, list[RedisServer]]]:
    """(redis+sentinel:// URL, [master, replica]); every process stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    servers: list[RedisServer] = []
    try:
        (tmp_path / "m").mkdir()
        (tmp_path / "r").mkdir()
        master = RedisServer(redis_binary, tmp_path / "m").start()
        servers.append(master)
        replica = RedisServer(redis_binary, tmp_path / "r")
        servers.append(replica)
        replica.start("--replicaof", "127.0.0.1", str(master.port))
        rr = redis.Redis(port=replica.port, socket_timeout=1)
        _wait("replication link", lambda: rr.info("replication").get("master_link_status") == "up")
        sport = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sport}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        proc = subprocess.Popen(
            [redis_binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        s = redis.Redis(port=sport, socket_timeout=1)
        # the sentinel has found the replica: a failover has somewhere to go
        _wait("sentinel to see the replica", lambda: len(s.sentinel_slaves(SERVICE)) >= 1)
        yield f"redis+sentinel://127.0.0.1:{sport}/{SERVICE}/0", servers
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for srv in servers:
            srv.stop()


def _master_port(url: str) -> int:
    from llamacache.engine.sentinel_url import parse_sentinel_url

    addr = parse_sentinel_url(url)
    host, port = addr.sentinels[0]
    s = redis.Redis(host=host, port=port, socket_timeout=1)
    return int(s.sentinel_get_master_addr_by_name(SERVICE)[1])


def test_put_get_through_sentinel_and_after_failover(
    sentinel_setup: tuple[str, list[RedisServer]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from llamacache.engine.protocol import SharedTier
    from llamacache.manager import CacheManager

    url, (master, replica) = sentinel_setup
    prefix = f"sent{os.getpid()}:"
    monkeypatch.setenv("LLAMACACHE_NETWORK_URL", url)
    monkeypatch.setenv("LLAMACACHE_NETWORK_KEY_PREFIX", prefix)
    with CacheManager() as m:
        c = m.cache("default")
        net = next(t for t in c.lower if isinstance(t, SharedTier))
        c.put("before", "v1")
        # the record is on the master the Sentinel names
        direct = redis.Redis(port=master.port)
        assert any(direct.scan_iter(match=prefix + "*"))
        assert net.get("before") is not None  # read from the shared tier, not the disk

        assert c.get("before") == "v1"  # held in this process's memory front

        s = redis.Redis(port=int(url.split(":")[2].split("/")[0]), socket_timeout=2)
        # NOGOODSLAVE until the Sentinel has fresh INFO from the replica: retry, bounded
        _wait(
            "the Sentinel to accept FAILOVER",
            lambda: s.execute_command("SENTINEL", "FAILOVER", SERVICE),
        )
        t0 = time.monotonic()
        new_master = redis.Redis(port=replica.port, socket_timeout=2)
        deadline = t0 + FAILOVER_BOUND
        _wait("the replica to be promoted", lambda: _master_port(url) == replica.port, 30)
        assert new_master.info("replication")["role"] == "master"
        promoted = time.monotonic() - t0
        n = 0
        while True:  # a put made after the switch reaches the new master, a get reads it
            n += 1
            c.put(f"after-{n}", "v2")
            landed = any(new_master.scan_iter(match=f"{prefix}*after-{n}"))
            got = net.get(f"after-{n}") is not None and net.get("before") is not None
            if landed and got:
                break
            assert time.monotonic() < deadline, "the tier did not follow the failover"
            time.sleep(0.1)
        switched = time.monotonic() - t0
        # the listener asks the Sentinels every 0.5 s: not the ~10 s the old master keeps
        # accepting writes before Sentinel demotes it
        assert switched - promoted < 5.0, (promoted, switched)
        assert c.get(f"after-{n}") == "v2"

        # another machine (its own cache folder) overwrites "before" on the new master: this
        # process's listener, reconnected through the Sentinel, drops its memory copy
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "node2"))
        done = run("put", "before", "v9")
        assert done.returncode == 0, done.stderr
        t1 = time.monotonic()
        while c.get("before") != "v9":
            assert time.monotonic() - t1 < 5, "a write after the failover was not seen"
            time.sleep(0.01)
        seen = time.monotonic() - t1
        print(
            f"\nsentinel failover: promoted in {promoted:.2f} s, the tier followed in "
            f"{switched:.2f} s; a remote write "
            f"after it was seen in {seen * 1000:.0f} ms"
        )


def test_bad_sentinel_url_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3tpw"
    for bad in (
        f"redis+sentinel://u:{secret}@127.0.0.1:26379",  # no service name
        f"redis+sentinel://u:{secret}@127.0.0.1/mymaster",  # no port
        f"redis+sentinel://u:{secret}@127.0.0.1:26379/mymaster/x",  # db not a number
    ):
        monkeypatch.setenv("LLAMACACHE_NETWORK_URL", bad)
        done = run("get", "k")
        assert done.returncode == 2, (bad, done.stderr)
        err = done.stderr.decode() if isinstance(done.stderr, bytes) else done.stderr
        assert len(err.strip().splitlines()) == 1, err
        assert "Sentinel" in err and secret not in err, err
