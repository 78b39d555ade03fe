"""get on a cache the user can read but not write (a system-wide cache), as uid 65534."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability._util import open_cache
from tests.reliability.test_permissions import as_nobody, nobody_base  # noqa: F401 (fixture)


def _fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def system_dir() -> Iterator[Path]:
    """A root-owned folder others can read (where an administrator puts a shared cache):
    root refuses to create a cache below a folder another user owns."""
    path = Path(tempfile.mkdtemp(prefix="llc-sys-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_get_works_on_a_cache_readable_but_not_writable(
    nobody_base: tuple[Path, list[str]],  # noqa: F811
    system_dir: Path,
    policy: str,
) -> None:
    base, cmd = nobody_base
    root = system_dir / f"root-{policy}"
    cache = open_cache(root, "default", file_threshold=4096, policy=policy)
    cache.put("small", b"s" * 100)
    cache.put("large", b"L" * 50_000)
    cache.put("text", "hello")
    cache.close()
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    before = _fingerprint(root)
    for key, want in (("small", "s" * 100), ("large", "L" * 50_000), ("text", "hello\n")):
        done = as_nobody(cmd, base, root, "get", key)
        assert done.returncode == 0, done.stderr
        assert done.stdout == want
    done = as_nobody(cmd, base, root, "get", "absent")
    assert done.returncode == 1 and "miss" in done.stderr
    done = as_nobody(cmd, base, root, "put", "k", "v")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert _fingerprint(root) == before  # no index write, no lock file, no reserve
