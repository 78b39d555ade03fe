"""Start-up benchmark: ``llamacache --version``, ``--help`` and ``inspect`` on a 1,000-entry
cache, each against ``python -c pass`` measured in the same run (same interpreter, same load).

Run: ``python tests/benchmarks/bench_startup.py [ENTRIES [REPEAT]]`` (not collected by pytest).
Every figure is the whole command as a user runs it (a subprocess), best of REPEAT (default
15) so another process on the machine inflates none of them; the median and CPU ratios are
printed too, as load on a shared machine inflates wall times unevenly. Bytecode is cached as
after a ``pip install`` (in a temporary PYTHONPYCACHEPREFIX, even where
PYTHONDONTWRITEBYTECODE is set), so the figures are not the cost of compiling sources.
Targets: ``--version`` <= 3x, ``inspect`` <= 6x of ``python -c pass``.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_admin import EXE, arg, build  # noqa: E402

TARGETS = {"--version": 3.0, "inspect": 6.0}


def timed(cmd: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Best wall time, median wall time and best CPU time (user + system, from
    ``getrusage``: microseconds, not clock ticks) of ``repeat`` runs, after one untimed run
    that fills the bytecode cache. CPU time is what load from other jobs inflates least."""
    walls: list[float] = []
    cpu_best = float("inf")
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i == 0:
            continue
        walls.append(wall)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cpu_best = min(cpu_best, cpu)
    return min(walls), statistics.median(walls), cpu_best


def main() -> None:
    entries = arg(1, "BENCH_STARTUP_ENTRIES", 1000)
    repeat = arg(2, "BENCH_STARTUP_REPEAT", 15)
    base = Path(tempfile.mkdtemp(prefix="llc-bench-startup-"))
    try:
        root = base / "root"
        build(root, entries, 4096)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}, best of {repeat}")
        env_root = ["--cache-dir", str(root)]
        baseline, base_med, base_cpu = timed([sys.executable, "-c", "pass"], repeat, env)
        print(
            f"python -c pass: {baseline * 1000:7.1f} ms wall (median {base_med * 1000:6.1f}), "
            f"{base_cpu * 1000:5.1f} ms CPU"
        )
        runs = {
            "--version": [*EXE, "--version"],
            "--help": [*EXE, "--help"],
            "inspect": [*EXE, *env_root, "inspect"],
            "ls --limit 20": [*EXE, *env_root, "ls", "--limit", "20"],
        }
        for name, cmd in runs.items():
            t, med, cpu = timed(cmd, repeat, env)
            target = TARGETS.get(name)
            goal = f" (target <= {target:g}x)" if target else ""
            print(
                f"{name:<14}: {t * 1000:7.1f} ms = {t / baseline:5.2f}x python -c pass{goal}; "
                f"median {med / base_med:5.2f}x; CPU {cpu * 1000:5.1f} ms = {cpu / base_cpu:5.2f}x"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
