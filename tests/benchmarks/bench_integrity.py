"""Integrity benchmark: what verifying every read costs (issue 12).

Run: ``python tests/benchmarks/bench_integrity.py [--model-mb 1024]`` (not collected by
pytest; default 256 MiB for a quick run). Every figure is a ratio against a baseline
measured in the same run, on the same filesystem, with a warm page cache:

* first ``get_model`` (one hash pass, then the map) vs one xxh3 pass over the file:
  target <= 1.5x;
* repeated ``get_model`` (the file identity is remembered) vs
  ``safetensors.numpy.load_file``: target >= 1000x faster;
* disk-tier get (memory front off), inline and file-backed, vs the path before this
  change (row lookup, plain ``open``, digest check, no key hash or fstat): target >= 0.9x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as stn
import xxhash

from llamacache import CacheManager, ModelCache
from llamacache.config import resolve
from llamacache.engine import checksums, files, framing
from llamacache.ml.model import WEIGHTS

MB = 1024 * 1024


def best(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def per_call(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time of ``n`` calls."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n)
    return statistics.median(out)


def xxh3_pass(path: Path) -> bytes:
    """One streaming xxh3-128 pass over a file, 4 MiB blocks (the baseline)."""
    h = xxhash.xxh3_128()
    buf = bytearray(4 * MB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.digest()


def manager_at(root: Path, model_mb: int) -> CacheManager:
    return CacheManager(
        resolve(
            read_files=False,
            overrides={
                "cache.disk.path": str(root),
                "caches.model.size": f"{max(model_mb, 64) * 3}MiB",
                "caches.default.memory_size": "0",
            },
        )
    )


def bench_model(work: Path, model_mb: int) -> None:
    n_tensors = 8
    rows = model_mb * MB // n_tensors // 4 // 1024
    weights = {f"layer{i}": np.random.rand(rows, 1024).astype(np.float32) for i in range(8)}
    with manager_at(work / "cache", model_mb) as m:
        models = ModelCache(m)
        models.put_model("bench", weights)
        del weights
        path = m.cache("model").get_path(models.entry_key("bench", "main", WEIGHTS))
        assert path is not None
        size = path.stat().st_size
        xxh3_pass(path)  # warm the page cache
        t_hash = best(lambda: xxh3_pass(path), 5)
        t_first = best(lambda: models.get_model("bench"), 5, setup=files.forget_verified)
        models.get_model("bench")
        t_again = per_call(lambda: models.get_model("bench"), 200)
        t_load = best(lambda: stn.load_file(str(path)), 3)
    print(f"model {size / MB:.0f} MiB, {n_tensors} tensors (warm page cache)")
    print(f"  xxh3 pass            {t_hash * 1e3:9.1f} ms   ({size / t_hash / 1e9:.1f} GB/s)")
    print(
        f"  first get_model      {t_first * 1e3:9.1f} ms   {t_first / t_hash:.2f}x xxh3 pass"
        "   (target <= 1.5x)"
    )
    print(f"  load_file            {t_load * 1e3:9.1f} ms")
    print(
        f"  repeated get_model   {t_again * 1e6:9.1f} us   {t_load / t_again:,.0f}x faster than"
        " load_file   (target >= 1000x)"
    )


def bench_disk_get(work: Path) -> None:
    with manager_at(work / "cache2", 64) as m:
        cache = m.cache("default")
        tier = cache.disk
        small, large = os.urandom(100), os.urandom(64 * 1024)
        for i in range(200):
            cache.put(f"s{i}", small)
            cache.put(f"l{i}", large)
        cache.memory.clear()

        def old_get(key: str) -> bytes:
            """The read path before this change: row, plain open, digest check, bytes."""
            tag, filename, value = tier._row(key)  # type: ignore[misc]
            if filename is not None:
                with open(os.path.join(tier.directory, filename), "rb") as f:
                    value = f.read()
            meta = framing.parse_meta(tag)
            if checksums.digest(meta.checksum, value) != meta.digest:
                raise ValueError("corrupt")
            return value if type(value) is bytes else bytes(value)

        def new_get(key: str) -> bytes:
            found = tier.get(key)
            assert found is not None
            out: bytes = framing.decode(found[0], found[1], cache.name, key)
            return out

        for label, prefix in (("inline 100 B", "s"), ("file 64 KiB", "l")):
            keys = [f"{prefix}{i}" for i in range(200)]
            it_old, it_new = iter(keys * 100), iter(keys * 100)
            t_old = per_call(lambda o=it_old: old_get(next(o)), 2000, rounds=5)
            t_new = per_call(lambda n=it_new: new_get(next(n)), 2000, rounds=5)
            print(
                f"disk get {label:<13} new {t_new * 1e6:7.1f} us  old {t_old * 1e6:7.1f} us"
                f"   {t_old / t_new:.2f}x of the old speed   (target >= 0.9x)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-mb", type=int, default=256)
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default: temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_model(Path(tmp), args.model_mb)
        bench_disk_get(Path(tmp))


if __name__ == "__main__":
    main()
