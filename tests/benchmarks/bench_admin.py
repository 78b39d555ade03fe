"""Admin benchmark: ``inspect`` at 1,000 vs 100,000 file entries (vs ``du -sb``), and
``verify`` throughput on file-backed entries (vs ``xxhsum -H128`` on the same files).

Run: ``python tests/benchmarks/bench_admin.py [SMALL LARGE VERIFY_MB]`` (not collected by
pytest), or set BENCH_ADMIN_SMALL / BENCH_ADMIN_LARGE / BENCH_ADMIN_VERIFY_MB. Defaults are
the issue's sizes (1000, 100000, 2048). Every figure is the whole command as a user runs it
(a subprocess), best of 3, warm page cache. Targets: inspect at LARGE within 1.5x of SMALL
and faster than ``du -sb``; verify >= 0.8x of the standalone hash tool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llamacache.config import resolve
from llamacache.manager import CacheManager

EXE = [os.path.join(os.path.dirname(sys.executable), "llamacache")]
if not os.path.exists(EXE[0]):
    EXE = [sys.executable, "-m", "llamacache"]


def arg(i: int, env: str, default: int) -> int:
    if len(sys.argv) > i:
        return int(sys.argv[i])
    return int(os.environ.get(env, default))


def timed(cmd: list[str], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs of a command."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def build(root: Path, n: int, size: int) -> Path:
    """A cache of ``n`` file-backed raw entries of ``size`` bytes, written by the engine."""
    settings = resolve(
        read_files=False,
        env={},
        overrides={
            "cache.disk.path": str(root),
            "cache.durability": "none",
            "cache.disk.size": "1TB",
            "cache.policy": "fifo",
        },
    )
    m = CacheManager(settings)
    c = m.cache("default")
    src = root.parent / f"src-{size}.bin"
    block = os.urandom(min(size, 1 << 20))
    with open(src, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
    engine_n = min(n, 1000)
    for i in range(engine_n):
        c.put_file(f"entry/{i:07d}", src)
    d = c.disk.directory
    m.close()
    if n > engine_n:
        bulk(d, src, engine_n, n)
    src.unlink()
    return d


def bulk(d: Path, src: Path, start: int, n: int) -> None:
    """Entries ``start..n`` as the engine would write them (a file each, same header),
    inserted in one transaction: building 100,000 entries one put at a time takes minutes."""
    import sqlite3

    data = src.read_bytes()
    con = sqlite3.connect(d / "cache.db", isolation_level=None)
    tag, size, mode = con.execute("SELECT tag, size, mode FROM Cache LIMIT 1").fetchone()
    rows = []
    now = time.time()
    for i in range(start, n):
        name = os.urandom(14).hex()
        rel = f"{name[:2]}/{name[2:4]}/{name[4:]}.val"
        os.makedirs(d / rel[:5], exist_ok=True)
        with open(d / rel, "wb") as f:
            f.write(data)
        rows.append((f"entry/{i:07d}", 1, now, None, now, 0, tag, size, mode, rel, None))
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
        " size, mode, filename, value) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    con.execute("COMMIT")
    con.close()


def ensure_xxhsum() -> str | None:
    tool = shutil.which("xxhsum")
    if tool is None and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "xxhash"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tool = shutil.which("xxhsum")
    return tool


def bench_inspect(small: int, large: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="llc-bench-admin-"))
    try:
        times = {}
        for n in (small, large):
            root = base / f"r{n}"
            t0 = time.perf_counter()
            build(root, n, 4096)
            print(f"built {n:,} file entries in {time.perf_counter() - t0:.1f}s")
            ins = timed([*EXE, "--cache-dir", str(root), "inspect", "-c", "default"])
            du = timed(["du", "-sb", str(root)])
            times[n] = (ins, du)
            print(
                f"inspect {n:>7,} entries: {ins * 1000:7.1f} ms   du -sb: {du * 1000:7.1f} ms"
                f"   inspect/du = {ins / du:.2f}x"
            )
        ratio = times[large][0] / times[small][0]
        print(f"inspect at {large:,} / at {small:,} = {ratio:.2f}x (target <= 1.5x)")
        print(
            f"inspect at {large:,} vs du -sb: {times[large][1] / times[large][0]:.2f}x faster "
            "(target > 1x)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench_verify(total_mb: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="llc-bench-verify-"))
    try:
        per = 128 * 2**20 if total_mb >= 256 else 2**20
        n = max(1, total_mb * 2**20 // per)
        root = base / "root"
        d = build(root, n, per)
        files = [str(p) for p in d.rglob("*.val")]
        total = n * per
        verify = [*EXE, "--cache-dir", str(root), "--json", "verify", "-c", "default"]
        subprocess.run(verify, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
        t_verify = timed(verify)
        body = json.loads(subprocess.run(verify, check=True, capture_output=True).stdout)
        assert body["ok"], "verify found problems in a fresh cache"
        tool = ensure_xxhsum()
        gbs = total / t_verify / 1e9
        print(
            f"verify {total / 2**30:.2f} GiB in {n} files: {t_verify:.2f}s = {gbs:.2f} GB/s "
            f"(command), {body['bytes_per_second'] / 1e9:.2f} GB/s (hashing loop)"
        )
        if tool is None:
            print("xxhsum not available: no baseline")
            return
        t_tool = timed([tool, "-H128", *files])
        print(f"xxhsum -H128 same files: {t_tool:.2f}s = {total / t_tool / 1e9:.2f} GB/s")
        print(f"verify / xxhsum throughput = {t_tool / t_verify:.2f}x (target >= 0.8x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    small = arg(1, "BENCH_ADMIN_SMALL", 1000)
    large = arg(2, "BENCH_ADMIN_LARGE", 100_000)
    verify_mb = arg(3, "BENCH_ADMIN_VERIFY_MB", 2048)
    print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
    bench_inspect(small, large)
    bench_verify(verify_mb)


if __name__ == "__main__":
    main()
