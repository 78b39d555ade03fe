"""`llamacache daemon`: cleans each cache on schedule and stops promptly on a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from llamacache.config import resolve
from llamacache.engine.tiered import TieredCache
from tests.cli.helpers import llamacache_exe


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    cfg = tmp_path / "llamacache.toml"
    cfg.write_text("[cache.disk]\ncleanup_interval = 0.3\n")
    return subprocess.Popen(
        [*llamacache_exe(), "--config", str(cfg), "--json", "daemon", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_lines(proc: subprocess.Popen[bytes], n: int, timeout: float = 60) -> list[dict]:
    assert proc.stderr is not None
    runs: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(runs) < n and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith(b"{"):
            runs.append(json.loads(line))
    return runs


def test_daemon_expires_entries_on_schedule_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    settings = resolve(config_file=None)
    with TieredCache(settings.cache("default")) as cache:
        cache.put("short", b"x" * 100, ttl=0.01)
        cache.put("keep", b"y" * 100)
    time.sleep(0.05)
    proc = _start(tmp_path, "--cache", "default")
    try:
        runs = _wait_for_lines(proc, 2)
        assert len(runs) >= 2, proc.stderr.read() if proc.stderr else ""
        assert runs[0]["cache"] == "default" and runs[0]["status"] == "ok"
        assert runs[0]["schema"] == "llamacache.daemon.run" and runs[0]["schema_version"] == 1
        assert runs[0]["expired"] == 1 and runs[1]["expired"] == 0
        # SIGTERM while the scheduler waits between runs: exit 0 without finishing the wait
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with TieredCache(settings.cache("default")) as cache:
        assert "keep" in cache and "short" not in cache


def test_daemon_stops_mid_wait_on_sigint(tmp_path: Path) -> None:
    cfg = tmp_path / "slow.toml"
    cfg.write_text("[cache.disk]\ncleanup_interval = 3600\n")
    proc = subprocess.Popen(
        [*llamacache_exe(), "--config", str(cfg), "daemon"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    assert b"started" in proc.stderr.readline()  # handlers are installed before this line
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert b"SIGINT: stopped after 0 runs" in proc.stderr.read()


def test_daemon_runs_the_first_cleanup_at_start_not_one_interval_later(tmp_path: Path) -> None:
    settings = resolve(config_file=None)
    with TieredCache(settings.cache("default")) as cache:
        cache.put("short", b"x" * 100, ttl=0.01)
    time.sleep(0.05)
    cfg = tmp_path / "hourly.toml"
    cfg.write_text("[cache.disk]\ncleanup_interval = 3600\n")
    proc = subprocess.Popen(
        [*llamacache_exe(), "--config", str(cfg), "--json", "daemon", "-c", "default"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        runs = _wait_for_lines(proc, 1)  # an hourly schedule: only a run at start can be seen
        assert runs and runs[0]["cache"] == "default" and runs[0]["expired"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
