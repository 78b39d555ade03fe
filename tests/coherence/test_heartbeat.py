"""What coherence costs the server: PINGs per second of one process with a network tier.

Counted with the real server's ``INFO commandstats`` (a private server, so no other test's
clients count). The listener's heartbeat is what keeps a process's local copies trusted
within ``coherence_interval``; it is needed only while the process reads the cache. A
process that holds a cache and does not read it must not keep the server busy (it used to
send ~40 PINGs a second at the default interval, idle or not), and one that reads sends
about one per interval. The staleness and fault tests (test_shared.py) prove the bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.network.helpers import net_settings, network_of, tiered
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis
WINDOW = 2.0  # seconds measured


def _pings(admin: redis.Redis) -> int:
    stats = admin.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


def test_heartbeat_pings_per_second(private_redis: RedisServer, tmp_path: Path) -> None:
    server = private_redis.start()
    admin = redis.Redis.from_url(server.url)
    cache = tiered(tmp_path / "a", net_settings(server.url))
    interval = cache.settings.coherence_interval
    try:
        assert network_of(cache).listener.ready.wait(5)
        cache.put("k", "v")
        assert cache.get("k") == "v"
        time.sleep(3.0)  # past the last use: the process is idle now
        admin.config_resetstat()
        time.sleep(WINDOW)
        idle = _pings(admin) / WINDOW

        admin.config_resetstat()
        end = time.monotonic() + WINDOW
        gets = 0
        while time.monotonic() < end:  # a busy reader (memory hits)
            assert cache.get("k") == "v"
            gets += 1
        busy = _pings(admin) / WINDOW
    finally:
        cache.close()
    print(f"PINGs/s: idle {idle:.1f}, busy {busy:.1f} ({gets} gets, interval {interval}s)")
    assert idle <= 1.0  # a slow keepalive at most
    assert busy <= 1.25 / interval  # about one per coherence_interval, not one per get
    assert gets > busy * WINDOW
