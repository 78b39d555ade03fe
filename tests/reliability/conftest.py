"""Reliability suite plumbing: ``FIGURE name=value`` lines and the summary table at the end.

Each test calls the ``figure`` fixture; the line is printed (visible with ``-s`` and in
failure reports) and kept on the session, so ``pytest_terminal_summary`` can print one
table after pytest's output capture has ended. Bad-outcome counts are named ``lost_``,
``corrupt_``, ``anomalies_``, ``escapes_`` or ``executed_`` and the tests assert them 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BAD_PREFIXES = ("lost_", "corrupt_", "anomalies_", "escapes_", "executed_")
_FIGURES: list[tuple[str, str, str]] = []  # (test, name, value)


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """``figure(name, value)``: print a FIGURE line and keep it for the summary table."""
    test = request.node.name

    def record(name: str, value: object) -> None:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"FIGURE {name}={shown}")
        _FIGURES.append((test, name, shown))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("reliability figures")
    width = max(len(t) for t, _, _ in _FIGURES)
    nwidth = max(len(n) for _, n, _ in _FIGURES)
    for test, name, value in _FIGURES:
        flag = ""
        if name.startswith(BAD_PREFIXES):
            flag = "  ok" if value == "0" else "  <-- MUST BE 0"
        tr.write_line(f"{test:<{width}}  {name:<{nwidth}}  {value}{flag}")


# -- helpers shared by the reliability tests ---------------------------------------------------


def can_mount() -> str | None:
    """None when this process may mount tmpfs (root with CAP_SYS_ADMIN), else the reason."""
    if os.geteuid() != 0:
        return "mounting needs root"
    if shutil.which("mount") is None:
        return "no mount(8) on this machine"
    probe = tempfile.mkdtemp(prefix="llc-mount-probe-")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return f"mount not permitted here: {done.stderr.decode(errors='replace').strip()}"
        subprocess.run(["umount", probe], check=True)
        return None
    finally:
        os.rmdir(probe)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("8m")`` mounts a fresh tmpfs of that size; all are unmounted at teardown."""
    reason = can_mount()
    if reason:
        pytest.skip(reason)
    mounts: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounts)}"
        where.mkdir()
        options = f"size={size},mode=0700"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounts.append(where)
        return where

    yield make
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], check=False)
