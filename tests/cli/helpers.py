"""Run the real CLI, in-process (CliRunner) or as a subprocess exactly as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from typer.testing import CliRunner

from llamacache.cli.app import app

runner = CliRunner()


def cli(*args: str, input: bytes | str | None = None) -> Any:
    """Invoke the app in-process; returns typer's Result (exit_code, stdout, stderr)."""
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def cli_json(*args: str) -> dict[str, Any]:
    result = cli("--json", *args)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


def llamacache_exe() -> list[str]:
    """The installed console script, or ``python -m llamacache`` when it is not on PATH."""
    exe = shutil.which("llamacache")
    bindir = os.path.dirname(sys.executable)
    local = os.path.join(bindir, "llamacache")
    if os.path.exists(local):
        return [local]
    return [exe] if exe else [sys.executable, "-m", "llamacache"]


def run(
    *args: str, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run the real entry point in a subprocess with the test's environment."""
    return subprocess.run(
        [*llamacache_exe(), *args], input=input, capture_output=True, timeout=timeout, check=False
    )
