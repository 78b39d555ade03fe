"""Verify benchmark: 1 GiB of file entries in a real cache, against ``xxhsum -H128`` over the
same value files, measured in the same run (best of REPEAT, page cache warm).

Run: ``python tests/benchmarks/bench_verify.py [MIB [REPEAT]]`` (not collected by pytest).
Prints three ratios against xxhsum: the whole ``llamacache verify`` command (start-up
included), and the hashing core alone, serial and with ``engine.checksums.
digest_files_parallel`` across the CPUs (fork, mmap). Goal: >= 1.5x for the command.
Needs xxhsum (Debian/Ubuntu package ``xxhash``); without it only the llamacache figures print.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from llamacache.engine import checksums  # noqa: E402
from tests.benchmarks.bench_admin import EXE, arg, build, ensure_xxhsum  # noqa: E402


def best(run: object, repeat: int) -> float:
    assert callable(run)
    fastest = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - t)
    return fastest


def main() -> None:
    mib = arg(1, "BENCH_VERIFY_MIB", 1024)
    repeat = arg(2, "BENCH_VERIFY_REPEAT", 5)
    base = Path(tempfile.mkdtemp(prefix="llc-bench-verify-"))
    try:
        per = 64 * 2**20 if mib >= 256 else 2**20
        n = max(1, mib * 2**20 // per)
        d = build(base / "root", n, per)
        files = sorted(str(p) for p in d.rglob("*.val"))
        total = n * per
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        cmd = [*EXE, "--cache-dir", str(base / "root"), "verify", "-c", "default", "--quiet"]
        subprocess.run(cmd, check=True, env=env)  # warm the page cache and the bytecode

        def command() -> None:
            subprocess.run(cmd, check=True, env=env)

        print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}; {n} files, {mib} MiB")
        t_cmd = best(command, repeat)
        t_serial = best(lambda: checksums.digest_files_parallel("xxh3", files, jobs=1), repeat)
        t_par = best(lambda: checksums.digest_files_parallel("xxh3", files), repeat)
        gbs = total / 1e9
        print(f"llamacache verify (command):      {t_cmd:6.3f} s  {gbs / t_cmd:5.2f} GB/s")
        print(f"hashing core, one process:        {t_serial:6.3f} s  {gbs / t_serial:5.2f} GB/s")
        print(f"hashing core, digest_files_parallel: {t_par:6.3f} s  {gbs / t_par:5.2f} GB/s")
        tool = ensure_xxhsum()
        if tool is None:
            print("xxhsum not found (install the xxhash package): no baseline")
            return
        t_x = best(lambda: subprocess.run([tool, "-H128", *files], check=True,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL), repeat)  # fmt: skip
        print(f"xxhsum -H128 same files:          {t_x:6.3f} s  {gbs / t_x:5.2f} GB/s")
        print(f"verify command / xxhsum = {t_x / t_cmd:.2f}x (goal >= 1.5x)")
        print(
            f"core serial / xxhsum = {t_x / t_serial:.2f}x; parallel / xxhsum = {t_x / t_par:.2f}x"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
