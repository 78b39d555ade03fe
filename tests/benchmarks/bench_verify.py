"""Verify benchmark: 1 GiB of file entries in a real cache, against ``xxhsum -H128`` over the
same value files, measured in the same run (page cache warm).

Run: ``python tests/benchmarks/bench_verify.py [MIB [REPEAT]]`` (not collected by pytest).
The whole ``llamacache verify`` command (start-up included) and xxhsum run in turn, REPEAT
times each (default 9), so load from other jobs falls on both alike; the ratio
xxhsum / command is printed from the best runs and from the medians (goal: >= 1.5x), with
the CPU time of each. Then the hashing core alone, in this process: one thread, and the
engine's DigestPool across the CPUs (``checksums.digest_files_parallel``).
Needs xxhsum (Debian/Ubuntu package ``xxhash``; ``scripts/install-test-deps.sh`` installs
it); without it the benchmark says so and prints only the llamacache figures.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from llamacache.engine import checksums  # noqa: E402
from tests.benchmarks.bench_admin import EXE, arg, build  # noqa: E402


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(fn: Callable[[], object], repeat: int) -> float:
    fastest = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - t)
    return fastest


def main() -> None:
    mib = arg(1, "BENCH_VERIFY_MIB", 1024)
    repeat = arg(2, "BENCH_VERIFY_REPEAT", 9)
    tool = shutil.which("xxhsum")
    if tool is None:
        print(
            "xxhsum is MISSING: install the Debian/Ubuntu package `xxhash` (apt-get install "
            "xxhash, or scripts/install-test-deps.sh); no baseline, so no ratio is printed"
        )
    base = Path(tempfile.mkdtemp(prefix="llc-bench-verify-"))
    try:
        per = 64 * 2**20 if mib >= 256 else 2**20
        n = max(1, mib * 2**20 // per)
        d = build(base / "root", n, per)
        files = sorted(str(p) for p in d.rglob("*.val"))
        gbs = n * per / 1e9
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        cmds = {"llamacache verify": [*EXE, "--cache-dir", str(base / "root"), "verify"]}
        cmds["llamacache verify"] += ["-c", "default", "--quiet"]
        if tool is not None:
            cmds["xxhsum -H128"] = [tool, "-H128", *files]
        for cmd in cmds.values():
            run(cmd, env)  # warm the page cache and the bytecode
        walls: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(repeat):
            for name, cmd in cmds.items():
                wall, cpu = run(cmd, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}; {n} files, {mib} MiB")
        for name in cmds:
            w, c = walls[name], cpus[name]
            print(
                f"{name:<18}: best {min(w):6.3f} s ({gbs / min(w):5.2f} GB/s), "
                f"median {statistics.median(w):6.3f} s; CPU best {min(c):6.3f} s"
            )
        if tool is not None:
            cmd_w, x_w = walls["llamacache verify"], walls["xxhsum -H128"]
            print(
                f"verify command / xxhsum = {min(x_w) / min(cmd_w):.2f}x best, "
                f"{statistics.median(x_w) / statistics.median(cmd_w):.2f}x median "
                "(goal >= 1.5x, start-up included)"
            )
        t_serial = best(lambda: checksums.digest_files_parallel("xxh3", files, jobs=1), repeat)
        t_par = best(lambda: checksums.digest_files_parallel("xxh3", files), repeat)
        print(f"hashing core, one thread:      {t_serial:6.3f} s  {gbs / t_serial:5.2f} GB/s")
        print(f"hashing core, DigestPool:      {t_par:6.3f} s  {gbs / t_par:5.2f} GB/s")
        if tool is not None:
            x = min(walls["xxhsum -H128"])
            print(f"core / xxhsum = {x / t_serial:.2f}x one thread, {x / t_par:.2f}x pool")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
