"""(1) Concurrency: several processes x 2 threads on one small cache, eviction running.

Values embed key, sequence and digest, so a reader can tell a value that was put for its
key from anything else. Meanwhile another process loops ``llamacache clean`` and
``llamacache evict``. Every get must return such a value or a miss; afterwards the index
and files agree (diskcache's own ``check()``), ``verify`` exits 0 and every remaining
entry is intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from ._util import Figure, check_value, diskcache_warnings, llamacache_cmd, open_cache

WORKER = Path(__file__).with_name("_worker.py")
CONFIG = """\
[cache]
disk_size = "3MB"
eviction_threshold = 0.8
compression = "none"
memory_size = "1MB"

[cache.disk]
file_threshold = "4KiB"
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "llamacache.toml"
    path.write_text(CONFIG)
    return path


def start_stress(root: Path, config: Path, n: int, seconds: float) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "stress",
                "--root",
                str(root),
                "--config",
                str(config),
                "--seconds",
                str(seconds),
                "--threads",
                "2",
                "--seed",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]


def collect(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def admin_loop(root: Path, config: Path, stop: threading.Event, codes: list[int]) -> None:
    """What cron does, back to back: clean, then evict to half the size."""
    base = [*llamacache_cmd(), "--config", str(config), "--cache-dir", str(root)]
    commands = (
        ["clean", "--wait", "60s", "--quiet"],
        ["evict", "--to-size", "50%", "-y", "--wait", "60s", "--quiet"],
    )
    i = 0
    while not stop.is_set():
        done = subprocess.run(
            [*base, *commands[i % 2]], capture_output=True, text=True, check=False
        )
        codes.append(done.returncode)
        if done.returncode:
            print("admin run failed:", done.stderr)
        i += 1


def test_processes_and_threads_with_eviction(tmp_path: Path, figure: Figure) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    config = write_config(tmp_path)
    seconds = 4.0
    t0 = time.monotonic()
    procs = start_stress(root, config, 3, seconds)
    stop = threading.Event()
    codes: list[int] = []
    admin = threading.Thread(target=admin_loop, args=(root, config, stop, codes))
    admin.start()
    try:
        results = collect(procs)
    finally:
        stop.set()
        admin.join(timeout=120)
    wall = time.monotonic() - t0
    ops = {k: sum(r["ops"][k] for r in results) for k in results[0]["ops"]}  # type: ignore[index]
    latencies = sorted(x for r in results for x in r["latencies"])  # type: ignore[attr-defined]
    anomalies = [a for r in results for a in r["anomalies"]]  # type: ignore[attr-defined]
    anomaly_count = sum(int(r["anomaly_count"]) for r in results)  # type: ignore[call-overload]
    evictions = sum(int(r["evictions"]) for r in results)  # type: ignore[call-overload]

    cache = open_cache(root, "default", disk_size=3_000_000, file_threshold=4096)
    remaining = list(cache.disk.iter_keys())
    bad_after = [k for k in remaining if check_value(str(k), cache.get(k)) is not None]
    cache.close()
    warnings = diskcache_warnings(root / "default")
    verify = subprocess.run(
        [*llamacache_cmd(), "--config", str(config), "--cache-dir", str(root), "verify"],
        capture_output=True,
        text=True,
        check=False,
    )

    total = ops["get"] + ops["put"] + ops["remove"]
    figure("processes_x_threads", "3x2")
    figure("ops_total", total)
    figure("ops_per_s", total / min(wall, seconds + 1))
    figure("p99_ms", latencies[int(len(latencies) * 0.99)] * 1000)
    figure("hits", ops["hit"])
    figure("evictions", evictions)
    figure("anomalies_get_put_remove", anomaly_count)
    figure("corrupt_after_run", len(bad_after))
    figure("anomalies_diskcache_check", len(warnings))
    figure("admin_runs_clean_evict", len(codes))
    figure("anomalies_admin_failures", sum(1 for c in codes if c))
    figure("anomalies_verify_exit", verify.returncode)
    assert anomaly_count == 0, anomalies
    assert not bad_after and not warnings, (bad_after, warnings)
    assert evictions > 0, "the size limit never forced an eviction"
    assert codes and not any(codes), codes
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert ops["hit"] > 0 and ops["put"] > 0
