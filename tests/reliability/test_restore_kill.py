"""kill -9 at random instants of ``restore`` (merge and replace): no intact entry is lost.

Issue 12: a kill at any instant of repair, clean, evict or restore loses no entry that was
intact before. ``--merge`` adds archive entries beside the cache's own: after a kill every
entry the cache had is still there with its value, and each archive entry is either absent
or whole. ``--replace`` swaps a fully built cache in with one rename: after a kill the cache
is exactly the old one or exactly the archive's, never a mix and never empty.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ._util import Figure, llamacache_cmd, open_cache

# read at import: the test fixtures clear LLAMACACHE_* from the environment
TRIALS = int(os.environ.get("LLAMACACHE_FAULT_TRIALS", "4"))  # >= 20 for issue 12's run
CONFIG = """\
[cache]
compression = "none"
durability = "none"

[cache.disk]
file_threshold = "4KiB"
"""


def _values(prefix: str, n: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"{prefix}{i}": rng.randbytes(6000 if i % 2 else 300) for i in range(n)}


def _fill(root: Path, values: dict[str, bytes]) -> None:
    """Store ``values`` in the cache ``default`` under the root ``root``."""
    cache = open_cache(root, "default", disk_size=10**9, file_threshold=4096, durability="none")
    for key, value in values.items():
        cache.put(key, value)
    cache.close()


def _read_all(root: Path, keys: list[str]) -> dict[str, bytes | None]:
    cache = open_cache(root, "default", disk_size=10**9, file_threshold=4096, on_corrupt="raise")
    try:
        return {k: cache.get(k) for k in keys}
    finally:
        cache.close()


def _archive(tmp_path: Path, config: Path, values: dict[str, bytes]) -> Path:
    src = tmp_path / "src"
    src.mkdir(mode=0o700)
    _fill(src, values)
    out = tmp_path / "archive.tar.zst"
    cmd = [*llamacache_cmd(), "--config", str(config), "--cache-dir", str(src)]
    done = subprocess.run([*cmd, "backup", "--to", str(out)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return out


def _staging(root: Path) -> bool:
    return any(root.glob(".restore-*"))


def _timed_run(cmd: list[str], root: Path) -> tuple[float, float]:
    """(when its staging folder appeared, when it ended), in seconds from its start."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staged = None
    while proc.poll() is None:
        if staged is None and _staging(root):
            staged = time.monotonic() - started
        time.sleep(0.001)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    ended = time.monotonic() - started
    return (staged if staged is not None else 0.0), ended


def _restore_killed(cmd: list[str], root: Path, rng: random.Random, window: float) -> bool:
    """Run ``cmd`` and SIGKILL it at a random instant after it starts staging (within
    ``window`` s, the rest of an uninterrupted run); True if it was cut."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not _staging(root) and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, window))
    cut = proc.poll() is None
    if cut:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return cut


@pytest.mark.parametrize("mode", ["--merge", "--replace"])
def test_kill_9_during_restore_loses_no_intact_entry(
    tmp_path: Path, figure: Figure, mode: str
) -> None:
    config = tmp_path / "llamacache.toml"
    config.write_text(CONFIG)
    archived = _values("a", 400, seed=1)
    archive = _archive(tmp_path, config, archived)
    own = _values("own", 40, seed=2)
    rng = random.Random(f"restore{mode}")
    keys = sorted(own) + sorted(archived)

    # how long one uninterrupted restore runs once it has started staging: kills land in there
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o700)
    _fill(probe, own)
    base = [*llamacache_cmd(), "--config", str(config)]
    staged, ended = _timed_run(
        [*base, "--cache-dir", str(probe), "restore", str(archive), mode], probe
    )
    window = max(0.05, ended - staged)

    cut = lost = mixed = torn = partial = 0
    for trial in range(TRIALS):
        root = tmp_path / f"t{trial}"
        root.mkdir(mode=0o700)
        _fill(root, own)
        cmd = [*base, "--cache-dir", str(root), "restore", str(archive), mode]
        cut += _restore_killed(cmd, root, rng, window)
        try:
            seen = _read_all(root, keys)
        except Exception:  # noqa: BLE001 (a raised CorruptEntryError is a torn entry)
            torn += 1
            continue
        has_own = [seen[k] == v for k, v in own.items()]
        has_archived = [seen[k] == archived[k] for k in archived]
        torn += sum(seen[k] is not None and seen[k] != archived[k] for k in archived)
        partial += 0 < sum(has_archived) < len(archived)  # killed while entries went in
        if mode == "--merge":
            lost += has_own.count(False)
        else:  # exactly the old cache, or exactly the archive's
            old = all(has_own) and not any(has_archived)
            new = all(has_archived) and all(seen[k] is None for k in own)
            mixed += not (old or new)
    name = mode.lstrip("-")
    figure(f"restore_{name}_kill_trials", TRIALS)
    figure(f"restore_{name}_killed_mid_run", cut)
    figure(f"restore_{name}_killed_with_some_entries_in", partial)
    figure(f"lost_intact_entries_after_restore_{name}_kill", lost)
    figure(f"corrupt_entries_after_restore_{name}_kill", torn)
    figure(f"mixed_caches_after_restore_{name}_kill", mixed)
    assert (lost, torn, mixed) == (0, 0, 0)
