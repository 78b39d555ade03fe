"""Every documented exit status happens, and only the documented ones are defined.

The table is ``cli/_manual.py``'s EXIT_STATUS (man pages and docs/reference/commands.md
are generated from it). Each code gets a real run that ends with it: a real cache
directory, a real lock held by another process, a real signal to a real process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llamacache.cli._manual import EXIT_STATUS
from llamacache.errors import ExitCode
from tests.cli.helpers import cli, llamacache_exe


def _ok(root: Path) -> int:
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    return int(cli("--cache-dir", str(root), "get", "k").exit_code)


def _problem(root: Path) -> int:  # a miss: the command ran and found a problem
    return int(cli("--cache-dir", str(root), "get", "absent").exit_code)


def _usage(root: Path) -> int:
    return int(cli("--cache-dir", str(root), "ls", "--sort", "colour").exit_code)


def _busy(root: Path) -> int:
    assert cli("--cache-dir", str(root), "put", "k", "v").exit_code == 0
    code = (
        "import sys, time; from pathlib import Path\n"
        "from llamacache.engine.locking import admin_lock\n"
        f"with admin_lock(Path({str(root / 'default')!r}), cache='default'):\n"
        "    print('held', flush=True); time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        return int(cli("--cache-dir", str(root), "clean").exit_code)
    finally:
        holder.terminate()
        holder.wait(timeout=60)


def _interrupted(root: Path) -> int:
    """Ctrl-C during a put from stdin (a real process; the put has begun its temp file)."""
    proc = subprocess.Popen(
        [*llamacache_exe(), "--cache-dir", str(root), "put", "k", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"x" * (8 << 20))  # above file_threshold: streamed through a temp file
    proc.stdin.flush()
    tmp = root / "default" / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (tmp.is_dir() and any(tmp.iterdir())):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    return proc.returncode


SCENARIOS: dict[int, Callable[[Path], int]] = {
    0: _ok,
    1: _problem,
    2: _usage,
    3: _busy,
    130: _interrupted,
}


def test_the_table_documents_every_exit_code_and_no_other() -> None:
    assert [code for code, _ in EXIT_STATUS] == [int(c) for c in ExitCode]
    assert set(SCENARIOS) == {code for code, _ in EXIT_STATUS}


@pytest.mark.parametrize("code", [code for code, _ in EXIT_STATUS])
def test_each_documented_exit_code_happens(code: int, tmp_path: Path) -> None:
    assert SCENARIOS[code](tmp_path / "root") == code


def test_the_boundary_exits_with_the_reports_status() -> None:
    """A command decides no exit code itself: the report's ``exit_code`` is the status."""
    from llamacache.cli._boundary import exit_code
    from llamacache.ops.entries import GetReport, RemoveReport

    assert exit_code(None) == 0
    assert exit_code(GetReport(cache="c", key="k", found=False)) == ExitCode.PROBLEM
    assert exit_code(RemoveReport(cache="c", removed=(), missing=("k",))) == ExitCode.PROBLEM
    missing_ok = RemoveReport(cache="c", removed=(), missing=("k",), missing_ok=True)
    assert exit_code(missing_ok) == ExitCode.OK
    assert "missing_ok" not in missing_ok.to_json()  # how it was asked, not what happened
