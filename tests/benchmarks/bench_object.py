"""Object tier benchmark against moto's S3-compatible server on loopback (a stand-in for a
real S3 endpoint: set LLAMACACHE_TEST_S3_URL, AWS_ENDPOINT_URL and credentials to measure a
real one) and a real redis-server, both started here.

Run: ``python tests/benchmarks/bench_object.py`` (not collected by pytest). The model size is
LLAMACACHE_BENCH_OBJECT_MB (default 128; the issue's full run: 1024). Prints, in one run:

* fetching a model file from the store into a fresh disk tier (``get_path`` on a second
  machine: parallel GETs of its parts, every part verified, written and indexed) against
  the client's own raw parallel download of the same objects (obstore GETs from as many
  threads, written to a file, nothing verified): the goal is >= 0.9x;
* the same fetch through the Redis tier (chunks streamed into the disk tier);
* bytes stored per payload byte: object store (every object under the prefix) and Redis
  (``MEMORY USAGE`` of every key).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import obstore  # noqa: E402

from llamacache.config.settings import CacheSettings, NetworkSettings, ObjectSettings  # noqa: E402
from llamacache.engine import netformat as nf  # noqa: E402
from llamacache.engine.network import NetworkTier  # noqa: E402
from llamacache.engine.objectstore import ObjectTier, part_names  # noqa: E402
from llamacache.engine.tiered import TieredCache  # noqa: E402
from tests.redis_server import RedisServer, find_server  # noqa: E402

MB = 1024 * 1024
SIZE_MB = int(os.environ.get("LLAMACACHE_BENCH_OBJECT_MB", "128"))
REPEAT = 5


def cache_settings(path: Path) -> CacheSettings:
    return CacheSettings(
        name="model", path=path, disk_size=4 * SIZE_MB * MB + 10**9,
        memory_size=64 * MB, durability="none",
    )  # fmt: skip


def store_settings() -> tuple[ObjectSettings, subprocess.Popen[bytes] | None]:
    """Settings for a fresh prefix; the moto server (None against a real endpoint)."""
    real = os.environ.get("LLAMACACHE_TEST_S3_URL")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    if real:
        return ObjectSettings(
            url=f"{real.rstrip('/')}/{prefix}",
            endpoint=os.environ.get("AWS_ENDPOINT_URL"),
            region=os.environ.get("AWS_REGION"),
            path_style=bool(os.environ.get("AWS_ENDPOINT_URL")),
        ), None
    from tests.redis_server import free_port

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true"
    )
    port = free_port()  # a process of its own: moto is Python, it must not share our GIL
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            req = urllib.request.Request(f"{endpoint}/bench", method="PUT")
            urllib.request.urlopen(req, timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return ObjectSettings(
        url=f"s3://bench/{prefix}", endpoint=endpoint, region="us-east-1", path_style=True
    ), server


def fetch_once(tmp: Path, lower: object, key: str) -> float:
    """Seconds for a fresh machine to bring ``key`` into its disk tier."""
    root = tmp / f"reader{uuid.uuid4().hex[:6]}"
    cache = TieredCache(cache_settings(root / "model"), lower=[lower()], metrics=False)  # type: ignore[operator,list-item]
    t = time.perf_counter()
    path = cache.get_path(key)
    took = time.perf_counter() - t
    assert path is not None and path.stat().st_size == SIZE_MB * MB, "miss"
    cache.close()
    shutil.rmtree(root)
    return took


def raw_once(store: object, names: list[str], out: Path) -> float:
    """The client's own parallel download of the same objects into a file: obstore GETs
    from 16 threads (as many as the tier uses), written in order, nothing verified."""
    t = time.perf_counter()
    with open(out, "wb") as f, ThreadPoolExecutor(16) as pool:
        get = lambda n: obstore.get(store, n).bytes()  # type: ignore[arg-type]  # noqa: E731
        for data in pool.map(get, names):
            f.write(data)
    took = time.perf_counter() - t
    out.unlink()
    return took


def main() -> None:
    obj, server = store_settings()
    mbs = lambda s: SIZE_MB / s  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "model.safetensors"
        with open(src, "wb") as f:
            for _ in range(SIZE_MB):
                f.write(os.urandom(MB))
        writer = TieredCache(cache_settings(tmp / "A" / "model"), lower=[ObjectTier(obj, "model")])
        t = time.perf_counter()
        writer.put_file("w", src)
        upload = time.perf_counter() - t
        tier = writer.lower[0]
        assert isinstance(tier, ObjectTier) and tier.puts == 1
        stored = sum(m["size"] for batch in obstore.list(tier.store) for m in batch)
        record = bytes(obstore.get(tier.store, tier.entry_path("w")).bytes())
        rec = nf.unpack_record(tier.entry_path("w").encode(), record, None)
        names = part_names(nf.unpack_manifest(rec.body))
        raws, fetches = [], []
        for _ in range(REPEAT):  # interleaved, so load from elsewhere hits both alike
            raws.append(raw_once(tier.store, names, tmp / "raw"))
            fetches.append(fetch_once(tmp, lambda: ObjectTier(obj, "model"), "w"))
        raw, obj_fetch = min(raws), min(fetches)
        print(f"model file: {SIZE_MB} MiB, part {obj.part_size // MB} MiB, best of {REPEAT}")
        print(f"upload (put_file, parallel part PUTs):{mbs(upload):8.1f} MiB/s")
        print(f"raw parallel download (obstore):       {mbs(raw):8.1f} MiB/s  (baseline)")
        print(f"object tier -> disk tier (verified):   {mbs(obj_fetch):8.1f} MiB/s  "
              f"{raw / obj_fetch:.2f}x raw (goal >= 0.9x)")  # fmt: skip
        print(f"object store bytes per payload byte:   {stored / (SIZE_MB * MB):.5f}")
        binary = find_server()
        if binary is None:
            print("redis tier: skipped (no redis-server)")
        else:
            redis_srv = RedisServer(binary, tmp).start("--maxmemory", "0")
            try:
                net = NetworkSettings(
                    url=redis_srv.url, key_prefix="bench:", max_value_size=2 * SIZE_MB * MB
                )
                rw = TieredCache(
                    cache_settings(tmp / "R" / "model"),
                    lower=[NetworkTier(net, "model", listen=False)],
                )
                rw.put_file("w", src)
                used = sum(
                    int(rw.lower[0].client.memory_usage(k) or 0)  # type: ignore[attr-defined]
                    for k in rw.lower[0].client.scan_iter(match="bench:*")  # type: ignore[attr-defined]
                )
                net_fetch = min(
                    fetch_once(tmp, lambda: NetworkTier(net, "model", listen=False), "w")
                    for _ in range(REPEAT)
                )
                print(f"redis tier -> disk tier (verified):    {mbs(net_fetch):8.1f} MiB/s  "
                      f"object tier is {net_fetch / obj_fetch:.2f}x the redis tier")  # fmt: skip
                print(f"redis bytes (RAM) per payload byte:    {used / (SIZE_MB * MB):.5f}")
                rw.close()
            finally:
                redis_srv.stop()
        writer.close()
    if server is not None:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
