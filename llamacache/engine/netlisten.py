"""Keeps a process's memory front coherent with writes made elsewhere to the shared tier.

Server-assisted invalidation in broadcast mode: one connection per network tier, on RESP2,
runs ``CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <entry prefix>`` and
subscribes to ``__redis__:invalidate``; Redis then publishes the name of every entry key
that anyone modifies (or that expires or is evicted). redis-py 8's built-in client-side
cache needs Redis >= 7.4 and RESP3, which Debian's 7.0 lacks, hence this small loop.

If the connection drops, invalidations may have been missed, so the memory front is
dropped whole and the listener reconnects after the tier's retry interval. A connection
can also die silently (a dead path that swallows replies), so the listener PINGs and
reconnects when a PING stays unanswered for two heartbeats (+ 100 ms); the cache asks
``confirm`` before trusting its local copies. The listener's state is its own: its failures
never open the tier's write breaker.

Heartbeats cost the server a command each, so they follow use: while the cache is read
(``confirm`` called within ``IDLE_AFTER`` seconds), one PING every ``heartbeat`` seconds
(half of ``coherence_interval`` + 50 ms: what keeps a reply younger than the bound); while
it is not, one every ``IDLE_HEARTBEAT`` seconds. A read after a quiet spell pays one round
trip: ``confirm`` sends a PING and waits for its PONG, which the server sends after every
invalidation it published before, so nothing missed is trusted. (It used to PING every
25 ms at the default interval, ~40 commands a second per process, idle or not.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import redis

from llamacache.config.redaction import redact_logger
from llamacache.engine import netformat as nf
from llamacache.engine.netclient import master_moved

if TYPE_CHECKING:
    from llamacache.engine.network import NetworkTier

log = redact_logger(logging.getLogger("llamacache.network"))
CHANNEL = "__redis__:invalidate"
POLL = 0.25  # seconds between checks of the stop flag while idle
MASTER_CHECK = 0.5  # seconds between asking the Sentinels where the master is
IDLE_AFTER = 2.0  # seconds without a read of the cache before heartbeats slow down
IDLE_HEARTBEAT = 5.0  # seconds between PINGs while idle (a dead path is found on next use)


class InvalidationListener(threading.Thread):
    """Daemon thread: invalidation messages -> ``on_invalidate(key)`` / ``on_reset()``."""

    def __init__(
        self,
        tier: NetworkTier,
        on_invalidate: Callable[[Hashable], None],
        on_reset: Callable[[], None],
        heartbeat: float = 0.5,
    ) -> None:
        super().__init__(name=f"llamacache-invalidate-{tier.cache}", daemon=True)
        self.tier = tier
        self.on_invalidate = on_invalidate
        self.on_reset = on_reset
        self.heartbeat = max(0.01, heartbeat)
        self.ready = threading.Event()  # set while subscribed
        self.received = 0
        self.resets = 0
        self.reconnects = 0
        self.errors = 0
        self.last_message_at = 0.0  # perf_counter of the last invalidation handled
        self.heard_at = 0.0  # monotonic time of the last reply of any kind (pong included)
        self.used_at = 0.0  # monotonic time the cache last asked ``confirm`` (it is read)
        self.pings = 0  # PINGs sent (heartbeats and confirmations)
        self._sent: deque[float] = deque()  # send times of PINGs not answered yet, in order
        self._answered = 0.0  # send time of the last PING answered
        self._pinged_at = 0.0
        self._cond = threading.Condition()  # guards _sent/_answered/heard_at; notified on replies
        self._send = threading.Lock()  # the cache's thread PINGs on this connection too
        self._stop_flag = threading.Event()
        self._conn: Any = None

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and close its connection."""
        self._stop_flag.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def alive_within(self, seconds: float) -> bool:
        """Subscribed, and the server answered within ``seconds``."""
        return self.ready.is_set() and time.monotonic() - self.heard_at <= seconds

    def confirm(self, within: float) -> bool:
        """True when every invalidation published up to about now has been received: the
        server answered within ``within`` s, or answers a PING sent now within ``within``
        s (one round trip, after a quiet spell). Marks the cache as in use, so heartbeats
        keep replies fresh while it is read. False at once while not subscribed or while an
        older PING is overdue (a dead path: the loop reconnects)."""
        now = time.monotonic()
        self.used_at = now
        if not self.ready.is_set():
            return False
        if now - self.heard_at <= within:
            return True
        with self._cond:
            if self._sent and now - self._sent[0] > within:
                return False
        try:
            self._ping(self._conn)
        except Exception:  # closed under us: the loop reconnects
            return False
        with self._cond:
            return self._cond.wait_for(lambda: self._answered >= now, timeout=within)

    def _ping(self, conn: Any) -> None:
        with self._send:
            t = time.monotonic()
            with self._cond:
                self._sent.append(t)
            self._pinged_at = t
            self.pings += 1
            conn.send_command("PING")

    def run(self) -> None:
        first = True
        retry_at = 0.0
        while not self._stop_flag.is_set():
            wait = retry_at - time.monotonic()
            if wait > 0:
                self._stop_flag.wait(min(POLL, wait))
                continue
            try:
                self._connect()
                if not first:  # what changed while we were away is unknown
                    self.reconnects += 1
                    self._reset()
                first = False
                self._loop()
            except (redis.RedisError, OSError, ValueError, TypeError, AttributeError) as exc:
                if self._stop_flag.is_set():
                    break
                self.errors += 1
                self._reset()
                log.info("cache %r: invalidation listener lost (%s)", self.tier.cache, exc)
                retry_at = time.monotonic() + min(self.tier.retry_interval, 1.0)
            finally:
                self.ready.clear()
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.disconnect()

    def _connect(self) -> None:
        pool = self.tier.client.connection_pool
        # replies are awaited with can_read(); the timeout bounds a handshake on a dead path
        kwargs = {**pool.connection_kwargs, "protocol": 2}
        conn = pool.connection_class(**kwargs)
        self._conn = conn
        conn.connect()
        conn.send_command("CLIENT", "ID")
        cid = conn.read_response()
        conn.send_command(
            "CLIENT", "TRACKING", "on", "REDIRECT", cid, "BCAST", "PREFIX", self.tier.entry_prefix
        )
        if conn.read_response() not in (b"OK", "OK"):
            raise ValueError("CLIENT TRACKING was refused")
        conn.send_command("SUBSCRIBE", CHANNEL)
        conn.read_response()
        self.tier.forget_echoes()
        with self._cond:
            self._sent.clear()
            self.heard_at = time.monotonic()
        self.ready.set()

    def _loop(self) -> None:
        conn = self._conn
        overdue = 2 * self.heartbeat + 0.1  # an unanswered PING this old: a silent path
        next_master = time.monotonic() + MASTER_CHECK
        while not self._stop_flag.is_set():
            now = time.monotonic()
            if now >= next_master:  # behind Sentinel: follow a failover within ~0.5 s
                next_master = now + MASTER_CHECK
                if master_moved(self.tier.client.connection_pool, conn):
                    raise redis.ConnectionError("the master moved (Sentinel failover)")
            in_use = now - self.used_at < IDLE_AFTER
            beat = self.heartbeat if in_use else IDLE_HEARTBEAT
            if now - self._pinged_at >= beat:
                self._ping(conn)
            if not conn.can_read(timeout=min(POLL, self.heartbeat)):
                with self._cond:  # checked only when nothing is waiting to be read
                    late = self._sent[0] if self._sent else None
                if late is not None and time.monotonic() - late > overdue:
                    raise redis.TimeoutError(f"no reply to PING for {now - late:.2f} s")
                continue
            msg = conn.read_response()
            pong = isinstance(msg, list) and bool(msg) and msg[0] in (b"pong", "pong")
            with self._cond:
                self.heard_at = time.monotonic()
                if pong and self._sent:
                    self._answered = self._sent.popleft()
                self._cond.notify_all()
            if not isinstance(msg, list) or len(msg) < 3 or msg[0] not in (b"message", "message"):
                continue
            self._handle(msg[2])

    def _handle(self, keys: Any) -> None:
        self.received += 1
        if keys is None:  # FLUSHALL / FLUSHDB: everything may have changed
            self._reset()
            return
        plen = len(self.tier.entry_prefix)
        if isinstance(keys, (bytes, str)):  # published by ``NetworkTier.withdraw``: one key
            keys = [keys]
        for raw in keys:
            rkey = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if self.tier.is_own_echo(rkey):
                continue
            key = nf.decode_key(rkey[plen:])
            if key is None:  # a hashed key: we cannot tell which entry it was
                self._reset()
            else:
                self.on_invalidate(key)
        self.last_message_at = time.perf_counter()

    def _reset(self) -> None:
        self.resets += 1
        try:
            self.on_reset()
        except Exception:  # the front is ours; never let the listener die of it
            log.exception("cache %r: could not drop the memory front", self.tier.cache)
