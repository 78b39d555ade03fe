"""Connections to the shared server: one pool per URL per process, and small helpers.

Kept apart from the tier so the admin ops and the listener share one way of connecting.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from llamacache.engine.sentinel_url import SCHEME as SENTINEL_SCHEME
from llamacache.engine.sentinel_url import parse_sentinel_url

DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)  # the server is unreachable
_POOLS: dict[tuple[str, int, float, float], redis.ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def connection_pool(
    url: str, connect_timeout: float = 1.0, reply_timeout: float = 5.0
) -> redis.ConnectionPool:
    """One pool per URL and timeouts per process (a forked child gets its own).

    Short timeouts (``cache.network.connect_timeout``, ``reply_timeout``) so a dead
    server, or a dead path that swallows replies, costs little.
    """
    k = (url, os.getpid(), connect_timeout, reply_timeout)
    with _POOLS_LOCK:
        pool = _POOLS.get(k)
        if pool is None:
            # redis-py's hiredis packer copies every memoryview twice (bytes(), then into
            # one buffer); the pure-Python packer sends large chunks as they are.
            encode = Encoder("utf-8", "strict", False).encode  # type: ignore[no-untyped-call]
            packer = PythonRespSerializer(6000, encode)
            opts: dict[str, Any] = {
                "socket_timeout": reply_timeout,
                "socket_connect_timeout": connect_timeout,
                "protocol": 2,
                "command_packer": packer,
            }
            if url.startswith(SENTINEL_SCHEME):
                pool = _sentinel_pool(url, opts)
            else:
                pool = redis.ConnectionPool.from_url(url, **opts)
            _POOLS[k] = pool
    return pool


def _sentinel_pool(url: str, opts: dict[str, Any]) -> redis.ConnectionPool:
    """A pool whose connections ask the Sentinels for the current master on every connect.

    After a failover the old master drops its clients (Sentinel kills them) or answers
    READONLY; redis-py then disconnects and the next connection goes to the new master.
    The invalidation listener builds its connection from this pool's class and arguments,
    so it follows the master the same way.
    """
    from redis.sentinel import Sentinel, SentinelConnectionPool

    addr = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": opts["socket_timeout"],
        "socket_connect_timeout": opts["socket_connect_timeout"],
        "protocol": 2,
    }
    if addr.sentinel_username:
        sentinel_kwargs["username"] = addr.sentinel_username
    if addr.sentinel_password:
        sentinel_kwargs["password"] = addr.sentinel_password
    manager = Sentinel(list(addr.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    return SentinelConnectionPool(  # type: ignore[no-untyped-call]
        addr.service_name,
        manager,
        db=addr.db,
        username=addr.username,
        password=addr.password,
        **opts,
    )


def master_moved(pool: redis.ConnectionPool, conn: Any) -> bool:
    """Behind Sentinel: ask where the master is now; True when ``conn`` points elsewhere.

    A manual or graceful failover leaves the old master accepting writes for seconds
    (Sentinel converts it to a replica later), so waiting for an error is not enough.
    Asking also makes redis-py drop the pool's idle connections to the old master.
    Always False for a plain server.
    """
    ask = getattr(pool, "get_master_address", None)
    if ask is None:
        return False
    try:
        host, port = ask()
    except redis.RedisError:  # no Sentinel answered: the heartbeat decides
        return False
    return (getattr(conn, "host", host), getattr(conn, "port", port)) != (host, port)


class EchoCounter:
    """Counts our own pending writes per key so their invalidation echo can be skipped.

    Redis broadcasts every change under the tracked prefix, ours included; without this a
    process would drop the memory copy it has just written.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._own: dict[str, int] = {}

    def expect(self, rkey: str, delta: int) -> None:
        with self._lock:
            n = self._own.get(rkey, 0) + delta
            if n > 0:
                self._own[rkey] = n
            else:
                self._own.pop(rkey, None)

    def seen(self, rkey: str) -> bool:
        """True (and one fewer pending) when an echo of ``rkey`` was expected."""
        with self._lock:
            n = self._own.get(rkey, 0)
            if n <= 0:
                return False
            if n == 1:
                del self._own[rkey]
            else:
                self._own[rkey] = n - 1
            return True

    def forget(self) -> None:
        with self._lock:
            self._own.clear()


def as_bytes(data: bytes | str) -> bytes:
    """Replies are bytes (no decode_responses); this narrows redis-py's loose typing."""
    return data.encode() if isinstance(data, str) else data


def redact(url: str) -> str:
    """The URL without a password (it ends up in logs and error messages)."""
    from llamacache.config.redaction import redact_url

    return redact_url(url)
