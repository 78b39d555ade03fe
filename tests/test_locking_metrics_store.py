"""The admin lock (flock) and the persisted counters, on real files and processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from llamacache.engine import metrics_store
from llamacache.engine.locking import admin_lock, lock_holder
from llamacache.errors import LockBusyError


def _hold(path: str, seconds: float, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    with admin_lock(Path(path), cache="x"):
        ready.set()
        time.sleep(seconds)


def test_second_holder_is_busy_and_lock_frees_when_holder_is_killed(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), 60, ready))
    proc.start()
    assert ready.wait(30)
    assert lock_holder(tmp_path) == proc.pid
    with pytest.raises(LockBusyError, match="cache 'x' is locked"), admin_lock(tmp_path, cache="x"):
        pass
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with admin_lock(tmp_path, cache="x", wait=5):  # the kernel released it: never stale
        assert lock_holder(tmp_path) is None or lock_holder(tmp_path) == os.getpid()


def test_wait_gets_the_lock_when_the_holder_finishes(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), 0.5, ready))
    proc.start()
    assert ready.wait(30)
    with admin_lock(tmp_path, cache="x", wait=30):
        pass
    proc.join()


def test_counters_add_across_writers_and_reset(tmp_path: Path) -> None:
    import diskcache

    diskcache.Cache(str(tmp_path)).close()
    assert metrics_store.read(tmp_path) == {}
    metrics_store.add(tmp_path, {("disk", "hits"): 3, ("memory", "hits"): 2})
    metrics_store.add(tmp_path, {("disk", "hits"): 4, ("disk", "misses"): 1})
    assert metrics_store.read(tmp_path) == {"disk": {"hits": 7, "misses": 1}, "memory": {"hits": 2}}
    metrics_store.reset(tmp_path)
    assert metrics_store.read(tmp_path) == {}


def test_counters_read_from_a_read_only_copy(tmp_path: Path) -> None:
    import diskcache

    diskcache.Cache(str(tmp_path)).close()
    metrics_store.add(tmp_path, {("disk", "hits"): 5})
    os.chmod(tmp_path, 0o500)
    try:
        assert metrics_store.read(tmp_path) == {"disk": {"hits": 5}}
    finally:
        os.chmod(tmp_path, 0o700)
