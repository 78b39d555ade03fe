# ruff: noqa: B023, C901  (a script: each lambda runs inside its own loop iteration)
"""Engine benchmark: memory front vs dict / cachetools, disk tier vs raw diskcache.

Run: ``python tests/benchmarks/bench_engine.py`` (not collected by pytest). Prints ops/s
and ratios measured in this run; compare ratios, not absolute numbers (shared VMs are
noisy). Targets: memory-front hit >= 1/3 of cachetools.LRUCache; disk tier within 1.3x
of raw diskcache with the same settings.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import diskcache

from llamacache.config.settings import CacheSettings
from llamacache.engine import TieredCache
from llamacache.engine.memory import MemoryFront


def best(fn: Callable[[], int], repeat: int = 3) -> float:
    """Best ops/s of ``repeat`` runs of ``fn`` (which returns its op count)."""
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t))
    return max(rates)


def bench_memory(n: int = 100_000) -> None:
    keys = [f"key:{i}" for i in range(n)]
    shuffled = keys[:]
    random.Random(1).shuffle(shuffled)
    value = b"v" * 100
    d: dict[str, bytes] = {}
    lru: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(maxsize=n * 2)
    mf = MemoryFront(limit=10**9, max_items=n * 2)
    tiered_root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
    tc = TieredCache(
        CacheSettings(
            name="m",
            path=tiered_root / "m",
            disk_size=10**10,
            memory_size=10**9,
            max_items=n * 2,
            policy="fifo",
        )
    )

    def set_dict() -> int:
        for k in keys:
            d[k] = value
        return n

    def set_lru() -> int:
        for k in keys:
            lru[k] = value
        return n

    def set_mf() -> int:
        put = mf.put
        for k in keys:
            put(k, value, 100)
        return n

    def get_dict() -> int:
        g = d.get
        for k in shuffled:
            g(k)
        return n

    def get_lru() -> int:
        g = lru.get
        for k in shuffled:
            g(k)
        return n

    def get_mf() -> int:
        g = mf.get
        for k in shuffled:
            g(k)
        return n

    tc_keys = keys[:20_000]
    for k in tc_keys:
        tc.put(k, value)
    random.Random(3).shuffle(tc_keys)

    def get_tc() -> int:
        g = tc.get
        for k in tc_keys:
            g(k)
        return len(tc_keys)

    rows = {
        "dict": (best(set_dict), best(get_dict)),
        "cachetools.LRUCache": (best(set_lru), best(get_lru)),
        "MemoryFront (lru)": (best(set_mf), best(get_mf)),
    }
    tc_get = best(get_tc)
    tc.close()
    shutil.rmtree(tiered_root)
    print(f"\n== memory front: {n} keys x 100 B, shuffled gets (Mops/s) ==")
    for name, (s, g) in rows.items():
        print(f"{name:22s} set {s / 1e6:6.2f}  get {g / 1e6:6.2f}")
    mf_s, mf_g = rows["MemoryFront (lru)"]
    ct_s, ct_g = rows["cachetools.LRUCache"]
    dict_s, dict_g = rows["dict"]
    print(
        f"MemoryFront/cachetools  set {mf_s / ct_s:.2f}x  get {mf_g / ct_g:.2f}x "
        f"(target get >= 0.33x, ideally >= 0.8x)"
    )
    print(f"MemoryFront/dict        set {mf_s / dict_s:.2f}x  get {mf_g / dict_g:.2f}x")
    print(
        f"TieredCache.get memory hit (fifo, no disk access): {tc_get / 1e6:.2f} Mops/s "
        f"= {tc_get / ct_g:.2f}x cachetools"
    )


def _run_sets(set_fn: Callable[[Any, bytes], Any], keys: list[str], values: list[bytes]) -> int:
    for k, v in zip(keys, values, strict=True):
        set_fn(k, v)
    return len(keys)


def _run_gets(get_fn: Callable[[Any], Any], keys: list[str]) -> int:
    for k in keys:
        get_fn(k)
    return len(keys)


def bench_disk() -> None:
    sizes = {"100B": (100, 5000), "10KB": (10 * 1024, 3000), "1MB": (1024 * 1024, 200)}
    # (our policy, raw diskcache policy it is compared with)
    pairs = [
        ("lru", "least-recently-used"),
        ("lru", "least-recently-stored"),
        ("fifo", "least-recently-stored"),
    ]
    print("\n== disk tier vs raw diskcache (ops/s; ratio = ours / raw; target >= 0.77) ==")
    print(
        "   settings: compression none, durability none (raw diskcache never fsyncs),"
        " file_threshold 32 KiB, shuffled gets, memory front off"
    )
    for label, (size, n) in sizes.items():
        keys = [f"k{i}" for i in range(n)]
        values = [os.urandom(size) for _ in range(min(n, 50))] * (n // min(n, 50))
        gets = keys[:]
        random.Random(2).shuffle(gets)
        for ours, raw_policy in pairs:
            root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
            try:
                raw = diskcache.Cache(
                    str(root / "raw"), eviction_policy=raw_policy, size_limit=10**12
                )
                s = CacheSettings(
                    name="d",
                    path=root / "ours",
                    disk_size=10**12,
                    memory_size=0,
                    policy=ours,
                    compression="none",
                    durability="none",
                )
                tc = TieredCache(s)
                r_set = best(lambda: _run_sets(raw.set, keys, values))
                o_set = best(lambda: _run_sets(tc.put, keys, values))
                r_get = best(lambda: _run_gets(raw.get, gets))
                o_get = best(lambda: _run_gets(tc.get, gets))
                print(
                    f"{label:5s} ours {ours:4s} vs {raw_policy:22s} set {o_set:9.0f} / "
                    f"{r_set:9.0f} = {o_set / r_set:4.2f}x   get {o_get:9.0f} / "
                    f"{r_get:9.0f} = {o_get / r_get:4.2f}x"
                )
                tc.close()
                raw.close()
            finally:
                shutil.rmtree(root)
        root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
        try:
            for extra in ({"durability": "fsync"}, {"compression": "auto", "durability": "none"}):
                s = CacheSettings(
                    name="d",
                    path=root / str(extra),
                    disk_size=10**12,
                    memory_size=0,
                    policy="lru",
                    **extra,
                )  # type: ignore[arg-type]
                tc = TieredCache(s)
                o_set = best(lambda: _run_sets(tc.put, keys, values))
                print(f"{label:5s} ours lru with {extra}: set {o_set:9.0f}")
                tc.close()
        finally:
            shutil.rmtree(root)


def bench_zipf(n_keys: int = 20_000, n_reads: int = 50_000) -> None:
    """Skewed reads (zipf s=1.1), 10 KB values, memory front off: lru vs diskcache lru/lrs."""
    import numpy as np

    ranks = np.random.default_rng(4).zipf(1.1, n_reads * 2)
    reads = [f"k{r - 1}" for r in ranks[ranks <= n_keys][:n_reads]]
    value = os.urandom(10 * 1024)
    root = Path(tempfile.mkdtemp(prefix="llc-bench-"))
    try:
        rates = {}
        for policy in ("least-recently-used", "least-recently-stored"):
            raw = diskcache.Cache(str(root / policy), eviction_policy=policy, size_limit=10**12)
            for i in range(n_keys):
                raw.set(f"k{i}", value)
            rates[policy] = best(lambda: _run_gets(raw.get, reads), repeat=2)  # noqa: B023
            raw.close()
        s = CacheSettings(
            name="z",
            path=root / "ours",
            disk_size=10**12,
            memory_size=0,
            policy="lru",
            compression="none",
            durability="none",
        )
        tc = TieredCache(s)
        for i in range(n_keys):
            tc.put(f"k{i}", value)
        ours = best(lambda: _run_gets(tc.get, reads), repeat=2)
        tc.close()
        print(f"\n== zipf 1.1 reads, {n_keys} x 10 KB, memory front off (gets/s) ==")
        for policy, rate in rates.items():
            print(
                f"ours lru {ours:9.0f} vs diskcache {policy:22s} {rate:9.0f} = {ours / rate:4.2f}x"
            )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    bench_memory()
    bench_disk()
    bench_zipf()
