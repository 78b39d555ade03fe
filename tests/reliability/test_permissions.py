"""(7) Permissions as an unprivileged user, and (11) pickle safety.

Root ignores file modes, so these run the real CLI as uid/gid 65534 (``nobody``):
unreadable and unwritable cache directories give one clear line naming the path; a
cache root writable by other users is refused; nothing outside the root is touched.
A crafted pickle planted in a cache that others can write is never loaded.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llamacache
from llamacache.config import resolve
from llamacache.errors import UnsafeCacheDirError
from llamacache.manager import CacheManager

from ._util import Figure, llamacache_cmd, open_cache

NOBODY = 65534


def _bootstrap() -> list[str]:
    """Run the CLI's ``main`` with this environment's packages on ``sys.path``.

    The venv's interpreter may live where uid 65534 cannot go (``/root/.pyenv``), so the
    same CLI code is started through an interpreter of the same version that it can run.
    """
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.add(str(Path(llamacache.__file__).parent.parent))
    code = (
        f"import sys; sys.path[:0] = {sorted(paths)!r}; sys.argv[0] = 'llamacache'; "
        "from llamacache.cli.main import main; main()"
    )
    return ["-I", "-c", code]


def _interpreters() -> list[str]:
    v = sys.version_info
    found = [os.path.realpath(sys.executable), shutil.which(f"python{v.major}.{v.minor}")]
    found += [f"/usr/bin/python{v.major}.{v.minor}", f"/usr/local/bin/python{v.major}.{v.minor}"]
    return [p for p in dict.fromkeys(found) if p and os.path.exists(p)]


@pytest.fixture
def nobody_base() -> Iterator[tuple[Path, list[str]]]:
    """A folder owned by uid 65534 outside root's private tmp dirs, and a CLI it can run."""
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    base = Path(tempfile.mkdtemp(prefix="llc-perm-"))
    os.chmod(base, 0o755)
    os.chown(base, NOBODY, NOBODY)
    command = None
    for python in _interpreters():
        candidate = [python, *_bootstrap()]
        try:
            probe = subprocess.run(
                [*candidate, "--help"],
                capture_output=True,
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                cwd=base,
                check=False,
            )
        except OSError:  # e.g. the interpreter sits under /root
            continue
        if probe.returncode == 0:
            command = candidate
            break
    if command is None:
        shutil.rmtree(base)
        pytest.skip(f"no Python {sys.version_info[:2]} that uid {NOBODY} may run")
    yield base, command
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(
    cmd: list[str], base: Path, root: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(base / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [*cmd, "--cache-dir", str(root), *args],
        capture_output=True,
        text=True,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env=env,
        cwd=base,
        check=False,
        timeout=60,
    )


def one_line_naming(done: subprocess.CompletedProcess[str], path: Path) -> bool:
    err = done.stderr
    return (
        done.returncode != 0
        and err.count("\n") == 1
        and "Traceback" not in err
        and "error: unexpected " not in err
        and str(path) in err
    )


def tree(where: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in where.rglob("*"):
        if p == skip or skip in p.parents:
            continue
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_size)
    return out


def chmod_tree(path: Path, dirs: int, files: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.chmod(p, dirs if p.is_dir() else files)


def test_unprivileged_user_gets_clear_errors(
    nobody_base: tuple[Path, list[str]], figure: Figure
) -> None:
    base, cmd = nobody_base
    (base / "home").mkdir()
    os.chown(base / "home", NOBODY, NOBODY)
    root = base / "root"
    outside = tree(base, root)

    done = as_nobody(cmd, base, root, "put", "k", "v")
    assert done.returncode == 0, done.stderr
    assert as_nobody(cmd, base, root, "put", "big", "x" * 100_000).returncode == 0
    cache_dir = root / "default"
    unclear = []

    chmod_tree(cache_dir, 0o000, 0o000)  # unreadable
    for args in (("get", "k"), ("put", "k2", "v")):
        done = as_nobody(cmd, base, root, *args)
        if not one_line_naming(done, cache_dir):
            unclear.append(f"unreadable {args}: {done.returncode} {done.stderr!r}")

    chmod_tree(cache_dir, 0o500, 0o400)  # readable, not writable
    done = as_nobody(cmd, base, root, "put", "k3", "y" * 100_000)
    if not one_line_naming(done, cache_dir):
        unclear.append(f"unwritable put: {done.returncode} {done.stderr!r}")
    chmod_tree(cache_dir, 0o700, 0o600)

    os.chmod(root, 0o777)  # a root others can write: refused, with the fix in the message
    done = as_nobody(cmd, base, root, "get", "k")
    refused_root = (
        done.returncode == 2 and one_line_naming(done, root) and "chmod go-w" in done.stderr
    )
    os.chmod(root, 0o700)
    os.chmod(cache_dir, 0o775)  # a cache folder others (group) can write: refused too
    done = as_nobody(cmd, base, root, "get", "k")
    refused_cache = done.returncode == 2 and one_line_naming(done, cache_dir)
    os.chmod(cache_dir, 0o700)

    assert as_nobody(cmd, base, root, "get", "k").stdout == "v\n"  # all well again
    after = tree(base, root)
    touched = sum(1 for p in set(outside) | set(after) if outside.get(p) != after.get(p))
    figure("anomalies_unclear_permission_errors", len(unclear))
    figure("anomalies_unsafe_root_accepted", int(not refused_root))
    figure("anomalies_unsafe_cache_dir_accepted", int(not refused_cache))
    figure("escapes_touched_outside_root", touched)
    assert not unclear, unclear
    assert refused_root and refused_cache
    assert touched == 0


class Planted:
    """Unpickling this opens (creates) the marker file: a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_planted_pickle_in_a_shared_directory_is_never_loaded(
    tmp_path: Path, figure: Figure
) -> None:
    root = tmp_path / "root"
    marker = tmp_path / "pwned"
    cache = open_cache(root, "default")
    cache.put("evil", Planted(marker))  # the bytes an attacker would plant
    cache.close()
    assert not marker.exists()
    loads = 0
    for shared in (root, root / "default"):
        os.chmod(shared, 0o777)
        with (
            pytest.raises(UnsafeCacheDirError),
            CacheManager(
                resolve(read_files=False, env={}, overrides={"cache.disk.path": str(root)})
            ) as manager,
        ):
            manager.cache("default").get("evil")
        done = subprocess.run(
            [*llamacache_cmd(), "--cache-dir", str(root), "get", "evil"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2 and "writable by other users" in done.stderr, done.stderr
        loads += marker.exists()
        os.chmod(shared, 0o700)
    figure("escapes_planted_pickle_loaded", loads)
    assert loads == 0
    # control: the same entry in a private directory really is live code
    fresh = open_cache(root, "default")
    fresh.get("evil").close()
    fresh.close()
    assert marker.exists()


def test_network_tier_never_unpickles(figure: Figure) -> None:
    package = Path(llamacache.__file__).parent
    modules = [p for p in package.rglob("*.py") if "network" in p.stem]
    if not modules:
        pytest.skip("no network tier module in this tree yet (issue 7 tests it end to end)")
    imports = 0
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            imports += sum(1 for n in names if n.split(".")[0] in ("pickle", "cPickle", "dill"))
    figure("escapes_network_pickle_imports", imports)
    assert imports == 0


def test_read_only_cache_serves_admin_reads_as_an_unprivileged_user(
    nobody_base: tuple[Path, list[str]], figure: Figure
) -> None:
    """Issue 12: ls, inspect, stats and verify work on a cache the user can read but not
    write (a system-wide cache), and change nothing in it."""
    base, cmd = nobody_base
    (base / "home").mkdir()
    os.chown(base / "home", NOBODY, NOBODY)
    root = base / "root"
    assert as_nobody(cmd, base, root, "put", "k", "v").returncode == 0
    assert as_nobody(cmd, base, root, "put", "big", "x" * 100_000).returncode == 0
    cache_dir = root / "default"
    chmod_tree(cache_dir, 0o500, 0o400)  # readable, not writable
    before = tree(base, base / "home")
    failed = []
    for args in (
        ("ls",),
        ("--json", "ls", "--sort", "size"),
        ("inspect", "--top", "5"),
        ("--json", "inspect"),
        ("stats",),
        ("--json", "stats"),
        ("verify",),
        ("--json", "verify", "--quick"),
        ("verify", "--sample", "50%"),
    ):
        done = as_nobody(cmd, base, root, *args)
        if done.returncode != 0 or "Traceback" in done.stderr:
            failed.append(f"{args}: {done.returncode} {done.stderr.strip()}")
    body = json.loads(as_nobody(cmd, base, root, "--json", "verify").stdout)
    after = tree(base, base / "home")
    chmod_tree(cache_dir, 0o700, 0o600)
    changed = sum(1 for p in set(before) | set(after) if before.get(p) != after.get(p))
    figure("anomalies_read_only_admin_failures", len(failed))
    figure("anomalies_read_only_writes", changed)
    assert not failed, failed
    assert body["ok"] and body["caches"][0]["verified"] == 2
    assert changed == 0
