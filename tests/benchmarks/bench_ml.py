"""ML benchmark: ``warm`` vs ``cp -r``, mmapped model load vs ``load_file``, dataset epochs.

Run: ``python tests/benchmarks/bench_ml.py [--warm-mb 2048 --model-mb 1024]`` (not collected
by pytest). Every figure is a ratio against a baseline measured in the same run, on the same
filesystem (``--dir``, default the system temp dir). Targets: warm >= 0.8x ``cp -r`` (cold
source: the page cache is dropped with posix_fadvise(DONTNEED) before each copy, and the
script says whether the drop took effect); mmap load >= 10x faster than
``safetensors.numpy.load_file`` for a 1 GB model; a dataset epoch (10,000 records x 512
int32 tokens, batch 32) read in a fresh process against raw diskcache (>= 5x), one ``.npy``
per batch (>= 5x) and one mapped ``.npy`` (>= 0.5x); fingerprint throughput (>= 1 GB/s);
storage bytes against raw diskcache; storage of a hub repo whose two revisions share one
``model.safetensors`` against the hub folder itself (``--only hub``, target ~1x).
``LLAMACACHE_BENCH_ML_GB=2`` adds a 2 GB variant.
Run only that part with ``--only dataset``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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
        left = size_mb * MB // shards
        # a valid safetensors file (the model cache refuses others): a U8 tensor of them
        head = json.dumps({"r": {"dtype": "U8", "shape": [left], "data_offsets": [0, left]}})
        head += " " * (-len(head) % 8)
        with open(src / f"model-{i:05d}.safetensors", "wb") as f:
            f.write(len(head).to_bytes(8, "little") + head.encode())
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
        cached = m.cache("model").get_path(mc.entry_key("bench", "main", "model.safetensors"))
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


def bench_hub(work: Path, size_mb: int) -> None:
    """Storage of a hub repo with two revisions sharing ``model.safetensors``, warmed."""
    import hashlib

    repo = work / "hub" / "models--org--bench"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    weights = work / "hub-weights.safetensors"
    stn.save_file({"w": np.ones((size_mb * MB // 2,), np.float16)}, str(weights))
    for rev, v in (("a" * 40, 1), ("b" * 40, 2)):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        for name, data in (
            ("model.safetensors", weights.read_bytes()),
            ("config.json", json.dumps({"v": v}).encode()),
        ):
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            os.symlink(os.path.relpath(blob, snap), snap / name)
    (repo / "refs" / "main").write_text("b" * 40)
    weights.unlink()
    with manager_at(work / "hcache", size_mb * 4) as m:
        t = time.perf_counter()
        report = warm(m, "model", [str(repo)])
        took = time.perf_counter() - t
        used = m.cache("model").disk.used_bytes()
        assert ModelCache(m).model_path("org/bench", "main").name == "b" * 40
    hub = _dir_bytes(repo / "blobs")
    per_rev = sum(p.stat().st_size for p in (repo / "snapshots").rglob("*") if p.is_file())
    files = _dir_bytes(work / "hcache" / "model")
    print(
        f"\n== hub repo, 2 revisions sharing a {size_mb} MiB model.safetensors (warm {took:.2f} s)"
    )
    print(f"  hub folder (blobs/)          {hub / MB:9.2f} MiB")
    print(
        f"  one copy per revision        {per_rev / MB:9.2f} MiB  (what a per-revision store holds)"
    )
    print(f"  llamacache disk tier (used)  {used / MB:9.2f} MiB  {used / hub:.2f}x the hub folder")
    print(
        f"  llamacache cache folder      {files / MB:9.2f} MiB  {files / hub:.2f}x (index included)"
    )
    print(f"  warm: {report.files} stored, {report.skipped} skipped (the shared copy)")
    shutil.rmtree(work / "hub")
    shutil.rmtree(work / "hcache")


# Every reader imports numpy before its clock starts: a training process has it loaded.
FRESH_OURS = """
import sys, time, numpy
from llamacache import CacheManager, DatasetCache
from llamacache.config import resolve
m = CacheManager(resolve(read_files=False, overrides={"cache.disk.path": sys.argv[1],
                 "caches.training.size": "64GiB"}))
m.cache("training")  # opening the index is not part of the read
t = time.perf_counter()
dc = DatasetCache(m, batch_size=int(sys.argv[3]))
n = touched = 0
for b in dc.get_dataset(sys.argv[2]).batches():
    n += 1
    if sys.argv[4] == "sum":
        touched += int(b.sum(dtype="int64"))
print(time.perf_counter() - t, n)
"""
FRESH_DISKCACHE = """
import sys, time, diskcache, numpy
c = diskcache.Cache(sys.argv[1])
t = time.perf_counter()
n = touched = 0
for i in range(int(sys.argv[2])):
    b = c.get(i)
    n += 1
    if sys.argv[4] == "sum":
        touched += int(b.sum(dtype="int64"))
print(time.perf_counter() - t, n)
"""
FRESH_NPY_FILES = """
import sys, time, numpy as np
t = time.perf_counter()
n = touched = 0
for i in range(int(sys.argv[2])):
    b = np.load(f"{sys.argv[1]}/{i:08d}.npy")
    n += 1
    if sys.argv[4] == "sum":
        touched += int(b.sum(dtype="int64"))
print(time.perf_counter() - t, n)
"""
FRESH_ONE_NPY = """
import sys, time, numpy as np
t = time.perf_counter()
a = np.load(sys.argv[1], mmap_mode="r")
bs = int(sys.argv[3])
n = touched = 0
for i in range(0, len(a), bs):
    b = a[i : i + bs]
    n += 1
    if sys.argv[4] == "sum":
        touched += int(b.sum(dtype="int64"))
print(time.perf_counter() - t, n)
"""


def fresh(code: str, *args: object, repeat: int = 3) -> float:
    """Best time of ``repeat`` fresh interpreters each reading one epoch (page cache warm)."""
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        times.append(float(out[0]))
    return min(times)


def _dir_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (links, like model_path views, not followed)."""
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def bench_dataset(work: Path, records: int, batch_size: int, seq: int) -> None:
    """Fresh-process epoch reads: ours (mapped shards) vs raw diskcache, .npy files, one .npy."""
    nb = -(-records // batch_size)

    def batch(i: int) -> np.ndarray:  # deterministic per index: each store regenerates it
        rows = min(batch_size, records - i * batch_size)
        rng = np.random.default_rng(i)
        return rng.zipf(1.3, (rows, seq)).clip(0, 31999).astype(np.int32)

    class Data:
        cache_key = f"bench-tokens-{records}x{seq}"

        def __iter__(self) -> Any:
            for i in range(nb):
                yield from batch(i)

    ours, raw, files, one = work / "ours", work / "raw", work / "npy", work / "epoch.npy"
    settings = resolve(
        read_files=False,
        overrides={"cache.disk.path": str(ours), "caches.training.size": "64GiB"},
    )
    with CacheManager(settings) as m:
        t = time.perf_counter()
        key = DatasetCache(m, batch_size=batch_size).cache_dataset(Data())
        t_fill = time.perf_counter() - t
    rc = diskcache.Cache(str(raw), size_limit=2**40)
    files.mkdir()
    whole = np.lib.format.open_memmap(one, "w+", np.int32, (records, seq))
    for i in range(nb):
        b = batch(i)
        rc.set(i, b)
        np.save(files / f"{i:08d}.npy", b)
        whole[i * batch_size : i * batch_size + len(b)] = b
    whole.flush()
    del whole
    rc.close()
    raw_bytes = sum(batch(i).nbytes for i in range(min(nb, 4))) * nb / min(nb, 4)

    print(f"\n== one epoch, {records} records x {seq} int32, batch {batch_size} ({nb} batches,")
    print(f"   {raw_bytes / MB:.0f} MiB), each read in a fresh process, page cache warm, best of 3")
    print(f"   (first epoch, preprocessing and storing included: {t_fill:.2f} s)")
    for mode in ("yield", "sum"):
        t_ours = fresh(FRESH_OURS, ours, key, batch_size, mode)
        t_raw = fresh(FRESH_DISKCACHE, raw, nb, batch_size, mode)
        t_files = fresh(FRESH_NPY_FILES, files, nb, batch_size, mode)
        t_one = fresh(FRESH_ONE_NPY, one, nb, batch_size, mode)
        what = "batches yielded" if mode == "yield" else "every batch summed (touches all bytes)"
        print(f"  -- {what}")
        print(f"  llamacache (mapped shards)  {t_ours * 1e3:8.1f} ms")
        print(
            f"  raw diskcache               {t_raw * 1e3:8.1f} ms  ours {t_raw / t_ours:5.1f}x"
            "  (target >= 5x)"
        )
        print(
            f"  one .npy per batch          {t_files * 1e3:8.1f} ms  ours {t_files / t_ours:5.1f}x"
            "  (target >= 5x)"
        )
        print(
            f"  one mapped .npy             {t_one * 1e3:8.1f} ms  ours {t_one / t_ours:5.2f}x"
            "  (target >= 0.5x)"
        )

    from llamacache.ml.identity import dataset_identity

    sample = [row for i in range(min(nb, 313)) for row in batch(i)]
    size = sum(r.nbytes for r in sample)
    t_fp = best(lambda: dataset_identity(list(sample)), 3)  # a new list: nothing remembered
    t_memo = best(lambda: dataset_identity(sample), 3)
    print(f"\n== fingerprint of {len(sample)} records ({size / MB:.0f} MiB of int32 arrays)")
    print(f"  first time        {size / t_fp / 1e9:6.2f} GB/s  (target >= 1 GB/s)")
    print(f"  same object again {t_memo * 1e6:8.0f} us  (length + sampled check)")

    ours_b, raw_b = _dir_bytes(ours / "training"), _dir_bytes(raw)
    print("\n== storage")
    print(f"  llamacache training cache {ours_b / MB:8.1f} MiB (shards raw, for mapping)")
    print(f"  raw diskcache             {raw_b / MB:8.1f} MiB (pickled arrays)")
    print(f"  ratio                     {ours_b / raw_b:8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="work directory (the cache's filesystem)")
    ap.add_argument("--warm-mb", type=int, default=256)
    ap.add_argument("--model-mb", type=int, default=128)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--only", choices=("warm", "model", "hub", "dataset"), default=None, help="run one section"
    )
    ap.add_argument("--hub-mb", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llc-bench-ml-", dir=args.dir))
    os.chmod(work, 0o700)
    try:
        print(f"work dir {work} (load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
        if args.only in (None, "warm"):
            bench_warm(work, args.warm_mb, args.rounds)
        if args.only in (None, "model"):
            bench_model(work, args.model_mb)
        if args.only in (None, "hub"):
            bench_hub(work, args.hub_mb)
        if args.only in (None, "dataset"):
            bench_dataset(work, args.records, args.batch_size, args.seq)
            big = float(os.environ.get("LLAMACACHE_BENCH_ML_GB", "0"))
            if big:  # the larger variant: records of the same shape up to ``big`` GB
                n = int(big * 1e9) // (args.seq * 4)
                (work / "big").mkdir()
                bench_dataset(work / "big", n, args.batch_size, args.seq)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
