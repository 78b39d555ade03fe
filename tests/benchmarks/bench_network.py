# ruff: noqa: B023  (a script: each lambda runs inside its own loop iteration)
"""Network tier benchmark against a real redis-server it starts on a free loopback port.

Run: ``python tests/benchmarks/bench_network.py [MB]`` (default 256; not collected by
pytest). Prints, in one run:

* chunked put/get MB/s of one large value through ``NetworkTier`` against raw redis-py
  pipelined ``SET``/``GET`` of the same bytes in the same chunk size (the baseline);
* small-value get ops/s: ``NetworkTier.get``, and a tiered cache's get that hits the
  network (memory and disk miss, then backfill), against raw redis-py ``GET``;
* the invalidation delay: from a writer's SET to the reader's listener having dropped
  its memory copy (p50/p99), in another cache (its own connection and listener).

Targets: large-value throughput >= 0.8x raw pipelined; invalidation p99 < 5 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llamacache.config.settings import CacheSettings, NetworkSettings  # noqa: E402
from llamacache.engine.network import NetworkTier  # noqa: E402
from llamacache.engine.tiered import TieredCache  # noqa: E402
from tests.redis_server import RedisServer, find_server  # noqa: E402

MB = 1024 * 1024
CHUNK = 4 * MB


def best(fn: Callable[[], None], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def raw_put(client: redis.Redis, value: bytes, batch: int) -> None:
    view = memoryview(value)
    pipe = client.pipeline(transaction=False)
    pending = 0
    for i in range(0, len(value), CHUNK):
        pipe.set(f"raw:c:{i // CHUNK}", view[i : i + CHUNK])
        pending += CHUNK
        if pending >= batch:
            pipe.execute()
            pending = 0
    pipe.execute()


def raw_get(client: redis.Redis, size: int, batch: int) -> bytearray:
    out = bytearray(size)
    view = memoryview(out)
    n = -(-size // CHUNK)
    per = max(1, batch // CHUNK)
    for start in range(0, n, per):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + per)):
            pipe.get(f"raw:c:{i}")
        for i, data in enumerate(pipe.execute(), start):
            view[i * CHUNK : i * CHUNK + len(data)] = data
    return out


def settings(path: Path) -> CacheSettings:
    return CacheSettings(
        name="bench", path=path, disk_size=100_000 * MB, memory_size=256 * MB, durability="none"
    )


def bench_large(url: str, size: int, tmp: Path) -> None:
    from llamacache.engine import framing

    value = os.urandom(size)
    client = redis.Redis.from_url(url)
    net = NetworkSettings(url=url, key_prefix="b:", chunk_size=CHUNK, max_value_size=2**40)
    tier = NetworkTier(net, "bench", listen=False)
    batch = tier.batch_bytes
    meta, payload = framing.encode(value, settings(tmp / "enc"), "big")

    # Interleaved, best of 7 each and the median of paired ratios: load drifts between runs.
    times: dict[str, list[float]] = {"raw_put": [], "put": [], "raw_get": [], "get": []}
    steps: dict[str, Callable[[], object]] = {
        "raw_put": lambda: raw_put(client, value, batch),
        "put": lambda: tier.put("big", meta, payload),
        "raw_get": lambda: raw_get(client, size, batch),
        "get": lambda: tier.get("big"),
    }
    for _ in range(7):
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
    t_raw_put, t_put, t_raw_get, t_get = (min(times[k]) for k in steps)
    paired = {
        op: statistics.median(r / t for r, t in zip(times[f"raw_{op}"], times[op], strict=True))
        for op in ("put", "get")
    }
    got = tier.get("big")
    assert got is not None and bytes(got[1]) == bytes(payload)
    mbs = size / MB
    print(f"large value {mbs:.0f} MB, {CHUNK // MB} MiB chunks, {batch // MB} MiB batches")
    print(f"  raw pipelined SET  {mbs / t_raw_put:8.0f} MB/s")
    target = "(target >= 0.8)"
    print(
        f"  NetworkTier.put    {mbs / t_put:8.0f} MB/s   ratio {t_raw_put / t_put:.2f}x "
        f"(median of paired runs {paired['put']:.2f}x) {target}"
    )
    print(f"  raw pipelined GET  {mbs / t_raw_get:8.0f} MB/s")
    print(
        f"  NetworkTier.get    {mbs / t_get:8.0f} MB/s   ratio {t_raw_get / t_get:.2f}x "
        f"(median of paired runs {paired['get']:.2f}x) {target}"
    )
    client.flushdb()


def bench_small(url: str, tmp: Path, n: int = 5000) -> None:
    client = redis.Redis.from_url(url)
    net = NetworkSettings(url=url, key_prefix="s:")
    writer = TieredCache(settings(tmp / "w"), lower=[NetworkTier(net, "bench", listen=False)])
    for i in range(n):
        writer.put(f"k{i}", b"x" * 100)
    raw_keys = [f"raw{i}" for i in range(n)]
    for k in raw_keys:
        client.set(k, b"x" * 100)
    t_raw = best(lambda: [client.get(k) for k in raw_keys])
    tier = NetworkTier(net, "bench", listen=False)
    t_tier = best(lambda: [tier.get(f"k{i}") for i in range(n)])

    def tiered_hits() -> None:  # a fresh "machine" each run: every get is a network hit
        d = tmp / f"r{time.monotonic_ns()}"
        reader = TieredCache(settings(d), lower=[NetworkTier(net, "bench", listen=False)])
        for i in range(n):
            reader.get(f"k{i}")
        reader.close()

    t_tiered = best(tiered_hits)
    print(f"small values, 100 B, {n} gets")
    print(f"  raw redis-py GET          {n / t_raw:8.0f} ops/s")
    print(f"  NetworkTier.get           {n / t_tier:8.0f} ops/s   ratio {t_raw / t_tier:.2f}x")
    print(
        f"  tiered get (network hit)  {n / t_tiered:8.0f} ops/s   ratio {t_raw / t_tiered:.2f}x"
        "  (includes the disk backfill)"
    )
    writer.close()
    client.flushdb()


def bench_invalidation(url: str, tmp: Path, n: int = 500) -> None:
    net = NetworkSettings(url=url, key_prefix="i:")
    writer = TieredCache(settings(tmp / "iw"), lower=[NetworkTier(net, "bench")])
    reader = TieredCache(settings(tmp / "ir"), lower=[NetworkTier(net, "bench")])
    from llamacache.engine import framing

    wtier = writer.lower[0]
    listener = reader.lower[0].listener  # type: ignore[attr-defined]
    assert listener.ready.wait(5)
    seen = threading.Event()
    arrived = [0.0]
    inner = listener.on_invalidate

    def hook(key: Hashable) -> None:
        inner(key)
        arrived[0] = time.perf_counter()
        seen.set()

    listener.on_invalidate = hook
    delays = []
    for i in range(n):
        reader.memory.put("hot", b"old", 3)
        seen.clear()
        meta, payload = framing.encode(f"v{i}".encode(), writer.settings, "hot")
        t0 = time.perf_counter()
        wtier.put("hot", meta, payload)  # the shared write alone (the local disk write is not
        t_done = time.perf_counter()  # part of the invalidation path)
        assert seen.wait(5), "no invalidation arrived"
        assert "hot" not in reader.memory
        delays.append((arrived[0] - t0, max(0.0, arrived[0] - t_done)))
    from_start = sorted(d[0] for d in delays)
    after_put = sorted(d[1] for d in delays)
    p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000  # noqa: E731
    print(f"invalidation delay, {n} writes (listener drops the reader's memory copy)")
    print(
        f"  from SET issued:   p50 {p(from_start, 0.5):.3f} ms  p99 {p(from_start, 0.99):.3f} ms"
        "  (target p99 < 5 ms)"
    )
    print(f"  after SET returned: p50 {p(after_put, 0.5):.3f} ms  p99 {p(after_put, 0.99):.3f} ms")
    writer.close()
    reader.close()


def main() -> None:
    size = int(sys.argv[1]) * MB if len(sys.argv) > 1 else 256 * MB
    binary = find_server()
    if binary is None:
        sys.exit("no redis-server found: run scripts/install-test-deps.sh")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = RedisServer(binary, tmp).start()
        try:
            bench_large(server.url, size, tmp)
            bench_small(server.url, tmp)
            bench_invalidation(server.url, tmp)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
