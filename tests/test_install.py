"""The README's install line works on a fresh venv, and its quick start then runs against
the command that install put on PATH (not this checkout's).

CI (``.ci/run``, with the package index reachable) runs the README's venv line verbatim
in a fresh copy of the repository. This test runs the same line offline: the only changes
are ``--no-deps --no-build-isolation`` on its ``pip install`` (the dependencies and the
build backend come from the test venv, through PYTHONPATH for the build and a ``.pth``
file for the installed command). It still builds and installs the package from its
metadata, so a broken entry point, a missing package or a data file not installed fails
here. ``--system-site-packages`` alone would not do: it exposes the system Python's
site-packages, not the test venv's.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_LINE = re.compile(
    r"^(python3 -m venv \.venv && \.venv/bin/pip install \S+ && \. \.venv/bin/activate)"
)


def readme_install_line() -> str:
    """The venv line of the README's install block (its trailing comment dropped)."""
    text = (ROOT / "README.md").read_text()
    install = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    lines = [m.group(1) for line in install.splitlines() if (m := VENV_LINE.match(line))]
    assert len(lines) == 1, "README's Install section has no (or several) venv install lines"
    return lines[0]


def readme_quick_start() -> str:
    """The README's command-line quick start: the first bash block after the install."""
    text = (ROOT / "README.md").read_text()
    after = text.split("## Quick start: the command line", 1)[1]
    match = re.search(r"```bash\n(.+?)\n```", after, re.S)
    assert match, "README lost its command-line quick start"
    return match.group(1)


def test_ci_runs_the_readme_install_line_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_install_line() in ci


def _copy_checkout(dest: Path) -> None:
    """The files a clean clone has (the build writes into its source tree)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)


@pytest.mark.timeout(600)
def test_readme_install_line_and_quick_start_on_a_fresh_venv(tmp_path: Path) -> None:
    line = readme_install_line()
    offline = line.replace(
        ".venv/bin/pip install ", ".venv/bin/pip install -q --no-deps --no-build-isolation ", 1
    )
    assert offline != line
    src = tmp_path / "llamacache"
    _copy_checkout(src)
    parent = site.getsitepackages()[0]  # this venv: typer, diskcache, setuptools, wheel
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLAMACACHE_", "CACHE_", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "PIP_NO_INDEX": "1"}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p != os.path.dirname(sys.executable)
    )
    # python3 on PATH is the system one a new user has; fall back to this interpreter's base
    if shutil.which("python3", path=env["PATH"]) is None:
        env["PATH"] = (
            os.path.dirname(getattr(sys, "_base_executable", sys.executable))
            + os.pathsep
            + env["PATH"]
        )
    build = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", offline],
        cwd=src,
        env=env | {"PYTHONPATH": parent},
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert build.returncode == 0, f"{offline}\n{build.stdout}\n{build.stderr}"
    venv = src / ".venv"
    (fresh,) = (venv / "lib").glob("python3*/site-packages")
    (fresh / "test-dependencies.pth").write_text(parent + "\n")  # after the venv's own
    work = tmp_path / "work"
    work.mkdir()
    quick = f". {venv}/bin/activate\ncommand -v llamacache\n{readme_quick_start()}"
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quick],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, f"{quick}\n{run.stdout}\n{run.stderr}"
    assert run.stdout.splitlines()[0] == str(venv / "bin" / "llamacache")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import llamacache; print(llamacache.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(fresh)), where  # the installed copy, not this checkout
    assert "hello" in run.stdout and "all good" in run.stdout
    assert (venv / "share" / "man" / "man1" / "llamacache.1").exists()  # data files installed
    assert (home / ".cache" / "llamacache").is_dir()  # the quick start used the default root
