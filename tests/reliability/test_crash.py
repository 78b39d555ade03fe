"""(2) kill -9 at random moments: every acknowledged write survives, nothing half-written.

A writer process prints ``ACK key digest`` after each put returns; the test kills it with
SIGKILL at a random moment, then reopens the cache. Every acknowledged key must read
back digest-correct; no index row may point at a missing or short file; what a crash
leaves is at worst an orphan in ``tmp/`` (for ``repair`` to sweep).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._util import (
    Figure,
    diskcache_warnings,
    file_rows,
    llamacache_cmd,
    open_cache,
    value_files,
)

WORKER = Path(__file__).with_name("_worker.py")
CONFIG = """\
[cache]
disk_size = "10GB"
compression = "none"

[cache.disk]
file_threshold = "4KiB"
temp_grace = "0s"  # the repair below runs once every writer is dead
"""


def crash_round(
    root: Path, config: Path, seed: int, large: int, rng: random.Random
) -> list[tuple[str, str]]:
    """Run a writer, kill -9 it after a random delay; the acknowledged (key, sha256) pairs."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "writer",
            "--root",
            str(root),
            "--config",
            str(config),
            "--seed",
            str(seed),
            "--large",
            str(large),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # wait until it really writes
    assert first.startswith("ACK"), proc.stderr.read() if proc.stderr else ""
    time.sleep(rng.uniform(0.0, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=60)
    acked = []
    for line in [first, *rest.splitlines()]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ACK":  # a torn last line was never acknowledged
            acked.append((parts[1], parts[2]))
    return acked


def audit(root: Path, acked: list[tuple[str, str]]) -> dict[str, int]:
    """Read back every acknowledged key and compare the index with the files on disk."""
    directory = root / "default"
    cache = open_cache(root, "default", file_threshold=4096)
    lost = corrupt = 0
    for key, digest in acked:
        handle = cache.open(key)
        if handle is None:
            lost += 1
            continue
        with handle:
            try:
                data = handle.read()
            except Exception:  # noqa: BLE001 (a CorruptEntryError here is a corrupt write)
                corrupt += 1
                continue
        corrupt += hashlib.sha256(data).hexdigest() != digest
    cache.close()
    half = 0
    rows = file_rows(directory)
    on_disk = sum(p.stat().st_size for p in value_files(directory))
    for filename, size in rows:
        path = directory / filename
        half += not path.exists() or path.stat().st_size != size
    warnings = diskcache_warnings(directory)
    orphans = [  # what a crash may leave: a temp file, or a value folder made just before it
        w
        for w in warnings
        if (w.startswith("unknown file:") and f"{os.sep}tmp{os.sep}" in w)
        or w.startswith("empty directory:")
    ]
    other = [w for w in warnings if w not in orphans]
    return {
        "acknowledged": len(acked),
        "lost": lost,
        "corrupt": corrupt,
        "half_written": half,
        "orphans": len(orphans),
        "check_warnings": len(other),
        "accounting_gap": abs(on_disk - sum(size for _, size in rows)),
        "warning_text": other,  # type: ignore[dict-item]
    }


@pytest.mark.parametrize(
    ("kind", "rounds", "large"),
    [("puts", 10, 0), ("large_file", 6, 24 * 2**20)],
    ids=["puts", "large_file"],
)
def test_kill_9_during_writes(
    tmp_path: Path, figure: Figure, kind: str, rounds: int, large: int
) -> None:
    rng = random.Random(kind)
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    config = tmp_path / "llamacache.toml"
    config.write_text(CONFIG)
    all_acked: list[tuple[str, str]] = []
    seen_warnings: list[str] = []
    totals = {"lost": 0, "corrupt": 0, "half_written": 0, "orphans": 0, "check_warnings": 0}
    for r in range(rounds):
        all_acked += crash_round(root, config, r, large, rng)
        found = audit(root, all_acked)  # earlier rounds' writes must survive later crashes too
        seen_warnings += found["warning_text"]  # type: ignore[operator]
        for k in totals:
            totals[k] = max(totals[k], found[k]) if k == "orphans" else totals[k] + found[k]
    repaired = subprocess.run(
        [*llamacache_cmd(), "--cache-dir", str(root), "--config", str(config), "repair"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    after_repair = audit(root, all_acked)
    figure(f"crash_rounds_{kind}", rounds)
    figure(f"acknowledged_{kind}", len(all_acked))
    figure(f"lost_acknowledged_{kind}", totals["lost"])
    figure(f"corrupt_acknowledged_{kind}", totals["corrupt"])
    figure(f"corrupt_half_written_{kind}", totals["half_written"])
    figure(f"anomalies_check_{kind}", totals["check_warnings"])
    figure(f"orphans_left_{kind}", totals["orphans"])
    figure(
        f"leftovers_after_repair_{kind}", after_repair["orphans"] + after_repair["check_warnings"]
    )
    figure(f"lost_after_repair_{kind}", after_repair["lost"] + after_repair["corrupt"])
    figure(f"anomalies_accounting_bytes_{kind}", after_repair["accounting_gap"])
    assert totals["lost"] == totals["corrupt"] == totals["half_written"] == 0
    assert totals["check_warnings"] == 0, seen_warnings[:5]
    assert after_repair["lost"] == after_repair["corrupt"] == after_repair["accounting_gap"] == 0
    leftover_text = diskcache_warnings(root / "default")
    assert after_repair["orphans"] == after_repair["check_warnings"] == 0, leftover_text
