"""Coherence benchmark: the fast path with the coherence check, staleness, Redis overhead.

Run: ``python tests/benchmarks/bench_coherence.py [TRIALS]`` (default 200; not collected
by pytest). Prints, measured side by side in this run:

* a memory hit through ``CacheManager.get`` (lru, metrics on, coherence check on) against
  ``cachetools.LRUCache.get`` over the same keys (goal >= 0.8x);
* staleness p50/p99 from a writer's acknowledgement to a long-lived reader seeing it:
  same machine (a writer process on the same cache folder), and two machines (two cache
  folders over one redis-server); goal p99 <= coherence_interval + 50 ms;
* Redis bytes per payload byte (``MEMORY USAGE``) of a chunked value at the default chunk
  size, and at exactly 4 MiB for comparison (goal <= 1.01).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cachetools
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llamacache.config import resolve  # noqa: E402
from llamacache.config.settings import CHUNK_SIZE  # noqa: E402
from llamacache.manager import CacheManager  # noqa: E402
from tests.coherence._util import BOUND, pct, wait_seen  # noqa: E402
from tests.network.helpers import net_settings, network_of, tiered  # noqa: E402
from tests.redis_server import RedisServer, find_server  # noqa: E402


def bench_hit(n: int = 20_000) -> None:
    keys = [f"key:{i}" for i in range(n)]
    random.Random(3).shuffle(keys)
    lru: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(maxsize=n * 2)
    root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
    settings = resolve(read_files=False, env={"LLAMACACHE_DISK_PATH": str(root)})
    m = CacheManager(settings)
    for k in keys:
        lru[k] = b"v" * 100
        m.put(k, b"v" * 100)

    def run(get: object) -> float:
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for k in keys:
                get(k)  # type: ignore[operator]
            best = max(best, n / (time.perf_counter() - t))
        return best

    ratios = []
    for _ in range(3):
        a, b = run(lru.get), run(m.get)
        ratios.append(b / a)
    print(f"\n== memory hit: {n} keys, lru, metrics + coherence check on ==")
    print(f"cachetools.LRUCache.get {a / 1e6:.2f} Mops/s  CacheManager.get {b / 1e6:.2f} Mops/s")
    print(
        f"CacheManager/cachetools get: {max(ratios):.2f}x best, {min(ratios):.2f}x worst "
        "(goal >= 0.8x)"
    )
    m.close()


_WRITER = """
import json, sys, time
from llamacache.config import resolve
from llamacache.manager import CacheManager
m = CacheManager(resolve(read_files=False, env={"LLAMACACHE_DISK_PATH": sys.argv[1]}))
c = m.cache("default")
print("ready", flush=True)
for line in sys.stdin:
    op, key, value = json.loads(line)
    c.put(key, value) if op == "put" else c.remove(key)
    print(time.monotonic(), flush=True)
"""


def _drive(proc: subprocess.Popen[str], get: object, trials: int) -> list[float]:
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    lags = []
    for i in range(trials):
        for op, want in (("put", f"v{i}"), ("rm", None)):
            get("k")  # type: ignore[operator]
            proc.stdin.write(json.dumps([op, "k", want]) + "\n")
            proc.stdin.flush()
            acked = float(proc.stdout.readline())
            lags.append(wait_seen(lambda: get("k"), want, acked))  # type: ignore[operator]
            time.sleep(max(0.0, acked + BOUND - time.monotonic()))
    proc.stdin.close()
    proc.wait(30)
    return lags


def _show(name: str, lags: list[float]) -> None:
    print(
        f"{name:34s} n={len(lags)} p50 {pct(lags, 0.5) * 1000:6.1f} ms  "
        f"p99 {pct(lags, 0.99) * 1000:6.1f} ms  (bound {BOUND * 1000:.0f} ms)"
    )


def bench_staleness_local(trials: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
    settings = resolve(read_files=False, env={"LLAMACACHE_DISK_PATH": str(root)})
    m = CacheManager(settings)
    reader = m.cache("default")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    print("\n== staleness: writer ack -> long-lived reader sees it ==")
    _show("same machine (writer process)", _drive(proc, reader.get, trials))
    m.close()


def bench_staleness_shared(url: str, trials: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="llc-bench-"))
    net = net_settings(url)
    reader = tiered(tmp / "b", net)
    network_of(reader).listener.ready.wait(5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.coherence._peer", url, net.key_prefix, str(tmp / "a")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    _show("two machines over Redis", _drive(proc, reader.get, trials))
    reader.close()


def bench_redis_bytes(url: str) -> None:
    r = redis.Redis.from_url(url)
    print("\n== Redis memory per payload byte (MEMORY USAGE of one chunk) ==")
    for name, size in (("default chunk (4 MiB - 64 B)", CHUNK_SIZE), ("exactly 4 MiB", 4 << 20)):
        r.set("bench:chunk", os.urandom(size))
        used = r.memory_usage("bench:chunk") or 0
        print(
            f"{name:30s} {size:>9d} B -> {used:>9d} B = {used / size:.5f} bytes/byte (goal <= 1.01)"
        )
    r.delete("bench:chunk")


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    bench_hit()
    bench_staleness_local(trials)
    binary = find_server()
    if binary is None:
        print("no redis-server: shared-tier figures skipped")
        return
    server = RedisServer(binary, Path(tempfile.mkdtemp(prefix="llc-redis-"))).start()
    try:
        bench_staleness_shared(server.url, trials)
        bench_redis_bytes(server.url)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
