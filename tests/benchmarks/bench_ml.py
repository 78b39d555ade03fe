"""ML benchmark: ``warm`` vs ``cp -r``, mmapped model load vs ``load_file``, dataset epochs.

Run: ``python tests/benchmarks/bench_ml.py [--warm-mb 2048 --model-mb 1024]`` (not collected
by pytest). Every figure is a ratio against a baseline measured in the same run, on the same
filesystem (``--dir``, default the system temp dir). Targets: warm >= 0.8x ``cp -r`` (cold
source: the page cache is dropped with posix_fadvise(DONTNEED) before each copy, and the
script says whether the drop took effect); mmap load >= 10x faster than
``safetensors.numpy.load_file`` for a 1 GB model; second-epoch ``stream_dataset`` batches/s
against reading the same batches from raw diskcache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
import safetensors.numpy as stn

from llamacache import CacheManager, DatasetCache, ModelCache
from llamacache.config import resolve
from llamacache.ops import _pagecache
from llamacache.ops.warm import warm

MB = 1024 * 1024


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def drop(paths: list[Path]) -> str:
    """Drop ``paths`` from the page cache; says how much stayed resident."""
    for p in paths:
        _pagecache.drop(p)
    total = sum(p.stat().st_size for p in paths)
    left = _pagecache.residency(paths)
    if left is None:
        return "drop: residency unknown (no mincore)"
    took = "took effect" if left < total * 0.05 else "did NOT take effect"
    return f"drop {took} ({left / MB:.1f} of {total / MB:.1f} MiB still resident)"


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def manager_at(root: Path, model_mb: int, durability: str = "fsync") -> CacheManager:
    settings = resolve(
        read_files=False,
        overrides={
            "cache.disk.path": str(root),
            "cache.durability": durability,
            "caches.model.size": f"{max(model_mb, 64) * 3}MiB",
            "caches.training.size": "4GiB",
        },
    )
    return CacheManager(settings)


def bench_warm(work: Path, size_mb: int, rounds: int) -> None:
    src = work / "src"
    src.mkdir()
    shards = 8
    for i in range(shards):  # random bytes: no compression, no sparse-file tricks
        with open(src / f"model-{i:05d}.safetensors", "wb") as f:
            left = size_mb * MB // shards
            while left:
                n = min(left, 64 * MB)
                f.write(np.random.default_rng(i).bytes(n))
                left -= n
    files = _files(src)
    total = sum(p.stat().st_size for p in files)
    subprocess.run(["sync"], check=True)  # no writeback of the sources during the runs
    times = dict.fromkeys(("cp", "cpsync", "warm", "warm-none", "warm-j2"), float("inf"))
    notes: list[str] = []

    def run_cp(r: int, with_sync: bool) -> None:
        dst = work / f"cp{r}"
        notes.append(("cp -r + sync: " if with_sync else "cp -r: ") + drop(files))
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        if with_sync:
            subprocess.run(["sync", *map(str, _files(dst))], check=True)
        name = "cpsync" if with_sync else "cp"
        times[name] = min(times[name], time.perf_counter() - t)
        subprocess.run(["sync"], check=True)
        shutil.rmtree(dst)

    def run_warm(r: int, durability: str = "fsync", jobs: int = 1) -> None:
        with manager_at(work / f"cache{r}", size_mb, durability) as m:
            m.cache("model")  # opening the index is not part of the copy
            notes.append("warm: " + drop(files))
            t = time.perf_counter()
            rep = warm(m, "model", [str(src)], jobs=jobs)
            name = "warm-j2" if jobs == 2 else "warm" if durability == "fsync" else "warm-none"
            times[name] = min(times[name], time.perf_counter() - t)
            assert rep.files == shards, rep
        subprocess.run(["sync"], check=True)
        shutil.rmtree(work / f"cache{r}")

    steps: list[Callable[[int], None]] = [
        lambda r: run_cp(r, False),
        lambda r: run_cp(r, True),
        run_warm,
        lambda r: run_warm(r, "none"),
        lambda r: run_warm(r, "fsync", 2),
    ]
    for r in range(rounds):  # alternate the order: whoever goes first pays for a busy disk
        for step in steps if r % 2 == 0 else steps[::-1]:
            step(r)
    cp_best, cpsync_best, warm_best = times["cp"], times["cpsync"], times["warm"]
    nosync_best = times["warm-none"]
    gbs = total / 1e9
    print(f"\n== warm, {total / MB:.0f} MiB in {shards} files, cold source, best of {rounds}")
    for n in dict.fromkeys(notes):
        print("  ", n)
    print(f"  cp -r                     {gbs / cp_best:6.2f} GB/s")
    print(f"  warm, durability=none     {gbs / nosync_best:6.2f} GB/s  (hash + index, no fsync)")
    print(f"  cp -r + sync              {gbs / cpsync_best:6.2f} GB/s")
    print(f"  warm, durability=fsync    {gbs / warm_best:6.2f} GB/s  (the default)")
    print(f"  warm, fsync, --jobs 2     {gbs / times['warm-j2']:6.2f} GB/s")
    print(f"  warm(none) / cp -r         = {cp_best / nosync_best:.2f}x  (target >= 0.8)")
    print(f"  warm(fsync) / cp -r + sync = {cpsync_best / warm_best:.2f}x")
    print(f"  warm(fsync) / cp -r        = {cp_best / warm_best:.2f}x")
    shutil.rmtree(src)


def bench_model(work: Path, size_mb: int) -> None:
    path = work / "model.safetensors"
    n = max(1, size_mb // 64)
    tensors = {f"layer{i}": np.full((4096, 8192), i, np.float16) for i in range(n)}
    stn.save_file(tensors, str(path))
    del tensors
    with manager_at(work / "mcache", size_mb) as m:
        mc = ModelCache(m)
        mc.put_model("bench", path)
        cached = m.cache("model").get_path("bench@main/model.safetensors")
        assert cached is not None
        t_mmap = best(lambda: mc.get_model("bench"), 5)
        t_load = best(lambda: stn.load_file(str(cached)), 3)
        t_read = best(lambda: mc.get_model("bench", mmap=False), 2)
    size = path.stat().st_size
    print(f"\n== model load, {size / MB:.0f} MiB, {n} fp16 tensors, warm page cache")
    print(f"  get_model (mmap)           {t_mmap * 1e3:9.3f} ms")
    print(f"  get_model (read+verify)    {t_read * 1e3:9.3f} ms")
    print(f"  safetensors load_file      {t_load * 1e3:9.3f} ms")
    print(f"  mmap speed-up vs load_file = {t_load / t_mmap:.0f}x  (target >= 10)")
    shutil.rmtree(work / "mcache")
    path.unlink()


def bench_dataset(work: Path, batches: int, batch_size: int, seq: int) -> None:
    rng = np.random.default_rng(0)
    records = [
        rng.zipf(1.3, seq).clip(0, 31999).astype(np.int32) for _ in range(batches * batch_size)
    ]

    class Data:
        cache_key = "bench-tokens"

        def __iter__(self) -> Any:
            return iter(records)

    with manager_at(work / "dcache", 64) as m:
        dc = DatasetCache(m, batch_size=batch_size)
        first = list(dc.stream_dataset(Data()))
        t_ours = best(lambda: sum(1 for _ in dc.stream_dataset(Data())), 3)
    t_disk = float("inf")
    for _ in range(3):  # a fresh manager: an empty memory front, every batch from disk
        with manager_at(work / "dcache", 64) as m2:
            dc2 = DatasetCache(m2, batch_size=batch_size)
            t = time.perf_counter()
            n_disk = sum(1 for _ in dc2.stream_dataset(Data()))
            t_disk = min(t_disk, time.perf_counter() - t)
            assert n_disk == len(first)
    with manager_at(work / "dcache", 64) as m:
        raw = diskcache.Cache(str(work / "raw"))
        for i, b in enumerate(first):
            raw.set(f"b{i}", b)
        t_raw = best(lambda: sum(1 for i in range(len(first)) if raw.get(f"b{i}") is not None), 3)
        raw.close()
    mb = sum(b.nbytes for b in first) / MB
    front = m.settings.caches["training"].memory_size
    print(f"\n== stream_dataset 2nd epoch, {len(first)} batches x {batch_size}x{seq} int32")
    print(f"   ({mb:.0f} MiB raw, zstd-compressed by auto in our cache; diskcache pickles;")
    print(f"    our memory front holds up to {front / MB:.0f} MiB of them)")
    print(f"  stream_dataset     {len(first) / t_ours:10.0f} batches/s  (memory front warm)")
    print(f"  stream_dataset     {len(first) / t_disk:10.0f} batches/s  (fresh process: from disk)")
    print(f"  raw diskcache get  {len(first) / t_raw:10.0f} batches/s")
    print(f"  ratio, memory front warm = {t_raw / t_ours:.2f}x")
    print(f"  ratio, from disk         = {t_raw / t_disk:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="work directory (the cache's filesystem)")
    ap.add_argument("--warm-mb", type=int, default=256)
    ap.add_argument("--model-mb", type=int, default=128)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llc-bench-ml-", dir=args.dir))
    os.chmod(work, 0o700)
    try:
        print(f"work dir {work} (load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
        bench_warm(work, args.warm_mb, args.rounds)
        bench_model(work, args.model_mb)
        bench_dataset(work, args.batches, args.batch_size, args.seq)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
